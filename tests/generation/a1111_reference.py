"""A1111 / k-diffusion reference formulas, written out for the parity tests (independent of
generation.pipelines): SDXL's training schedule, A1111's zero-terminal-SNR rescale, k-diffusion's
DiscreteSchedule and schedule types, and each A1111 sampler's default schedule; and A1111's reader of the PNG
``parameters`` record (modules/infotext_utils.py ``parse_generation_parameters``, ``unquote``; modules/sd_samplers.py
``get_sampler_and_scheduler`` with the tables of sd_samplers_kdiffusion.py / sd_schedulers.py; what the txt2img
tab's paste fills in, modules/ui.py), and A1111's short hashes (modules/hashes.py) with hashlib."""

import hashlib
import json
import math
import re
import struct

import numpy as np


def ref_alphas_cumprod(ztsnr: bool) -> np.ndarray:
    # sgm's LegacyDDPMDiscretization for SDXL: betas = linspace(sqrt(0.00085), sqrt(0.012), 1000) ** 2
    betas = np.linspace(math.sqrt(0.00085), math.sqrt(0.012), 1000) ** 2
    ac = np.cumprod(1.0 - betas)
    if ztsnr:  # A1111's rescale_zero_terminal_snr_abar
        root = np.sqrt(ac)
        root0, root_t = root[0], root[-1]
        root = (root - root_t) * root0 / (root0 - root_t)
        ac = root**2
        ac[-1] = 4.8973451890853435e-08
    return ac


def ref_table(ztsnr: bool) -> np.ndarray:
    ac = ref_alphas_cumprod(ztsnr)
    return np.sqrt((1 - ac) / ac)


def ref_t_to_sigma(table, t):
    t = np.asarray(t, dtype=np.float64)
    lo, hi = np.floor(t).astype(int), np.ceil(t).astype(int)
    w = t - lo
    log = np.log(table)
    return np.exp((1 - w) * log[lo] + w * log[hi])


def ref_sigmas(schedule: str, n: int, table) -> np.ndarray:
    smin, smax = table[0], table[-1]
    if schedule == "uniform":  # DiscreteSchedule.get_sigmas(n)
        s = ref_t_to_sigma(table, np.linspace(len(table) - 1, 0, n))
    elif schedule == "karras":  # rho 7
        ramp = np.linspace(0, 1, n)
        s = (smax ** (1 / 7) + ramp * (smin ** (1 / 7) - smax ** (1 / 7))) ** 7
    elif schedule == "exponential":
        s = np.exp(np.linspace(math.log(smax), math.log(smin), n))
    elif schedule == "sgm_uniform":  # sigma_to_t(sigma_max) = 999, sigma_to_t(sigma_min) = 0
        s = ref_t_to_sigma(table, np.linspace(len(table) - 1, 0, n + 1)[:-1])
    elif schedule == "beta":  # alpha = beta = 0.6
        from scipy import stats

        s = smin + stats.beta.ppf(1 - np.linspace(0, 1, n), 0.6, 0.6) * (smax - smin)
    else:
        raise AssertionError(schedule)
    return np.append(s, 0.0)


def ref_a1111_sigmas(sampler: str, schedule: str, n: int, ztsnr: bool) -> np.ndarray:
    """A1111's KDiffusionSampler.get_sigmas: Automatic -> the sampler's default; discard_next_to_last_sigma."""
    automatic = {"DPM++ 2M": "karras", "DPM++ SDE": "karras", "DPM++ 2M SDE": "exponential",
                 "DPM++ 2M SDE Heun": "exponential", "DPM++ 3M SDE": "exponential", "DPM2": "karras",
                 "DPM2 a": "karras"}
    discard = sampler in ("DPM2", "DPM2 a", "DPM++ 3M SDE")
    name = automatic.get(sampler, "uniform") if schedule == "Automatic" else schedule.lower().replace(" ", "_")
    s = ref_sigmas(name, n + 1 if discard else n, ref_table(ztsnr))
    return np.concatenate([s[:-2], s[-1:]]) if discard else s


# -- A1111's reader of the PNG record ----------------------------------------------------------------------------

RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
RE_IMAGESIZE = re.compile(r"^(\d+)x(\d+)$")


def a1111_unquote(text):
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def a1111_parse(x: str) -> dict:
    """``parse_generation_parameters`` (A1111 1.10), without the version back-compat and the options it reads."""
    res = {}
    prompt, negative_prompt, done_with_prompt = "", "", False
    *lines, lastline = x.strip().split("\n")
    if len(RE_PARAM.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative_prompt += ("" if negative_prompt == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    for k, v in RE_PARAM.findall(lastline):
        if v[0] == '"' and v[-1] == '"':
            v = a1111_unquote(v)
        m = RE_IMAGESIZE.match(v)
        if m is not None:
            res[f"{k}-1"], res[f"{k}-2"] = m.group(1), m.group(2)
        else:
            res[k] = v
    res["Prompt"], res["Negative prompt"] = prompt, negative_prompt
    res.setdefault("Clip skip", "1")
    if "Hires resize-1" not in res:
        res["Hires resize-1"], res["Hires resize-2"] = 0, 0
    res.setdefault("Hires sampler", "Use same sampler")
    res.setdefault("Hires schedule type", "Use same scheduler")
    res.setdefault("Hires checkpoint", "Use same checkpoint")
    res.setdefault("RNG", "GPU")  # "Missing RNG means the default was set, which is GPU RNG"
    res.setdefault("Schedule type", "Automatic")
    return res


# A1111 1.10: sampler -> its 'scheduler' option (None = Automatic means get_sigmas / the sampler's own steps)
A1111_SAMPLERS = {"DPM++ 2M": "karras", "DPM++ SDE": "karras", "DPM++ 2M SDE": "exponential",
                  "DPM++ 2M SDE Heun": "exponential", "DPM++ 3M SDE": "exponential", "Euler a": None, "Euler": None,
                  "LMS": None, "Heun": None, "DPM2": "karras", "DPM2 a": "karras", "DDIM": None, "UniPC": None,
                  "LCM": None}
A1111_SCHEDULERS = [("automatic", "Automatic", []), ("uniform", "Uniform", []), ("karras", "Karras", []),
                    ("exponential", "Exponential", []), ("polyexponential", "Polyexponential", []),
                    ("sgm_uniform", "SGM Uniform", ["SGMUniform"]), ("kl_optimal", "KL Optimal", []),
                    ("align_your_steps", "Align Your Steps", []), ("simple", "Simple", []),
                    ("normal", "Normal", []), ("ddim", "DDIM", []), ("beta", "Beta", [])]


def a1111_sampler_and_scheduler(sampler_name, scheduler_name):
    by_key = {n: (n, label) for n, label, _ in A1111_SCHEDULERS} | {label: (n, label) for n, label, _ in A1111_SCHEDULERS}
    found = by_key.get(scheduler_name, A1111_SCHEDULERS[0][:2])
    name = sampler_name or "DPM++ 2M"
    for n, label, aliases in A1111_SCHEDULERS:
        for option in [label, n, *aliases]:
            if name.endswith(" " + option):
                found, name = (n, label), name[: -(len(option) + 1)]
                break
    sampler = name if name in A1111_SAMPLERS else "DPM++ 2M"
    if A1111_SAMPLERS[sampler] == found[0]:  # revert to Automatic when it is the sampler's default
        found = ("automatic", "Automatic")
    return sampler, found[1]


def a1111_txt2img(res: dict) -> dict:
    """What pasting the record into A1111's txt2img tab sets, in the names of A1111's txt2img API: the fields'
    paste rules of modules/ui.py (``Hires. fix`` is ticked when the record has a denoising strength and a hires
    upscale, upscaler or resize) and the checkpoint A1111 looks up by ``Model hash``, else ``Model``."""
    sampler, scheduler = a1111_sampler_and_scheduler(res.get("Sampler"), res.get("Schedule type"))
    enable_hr = "Denoising strength" in res and ("Hires upscale" in res or "Hires upscaler" in res
                                                 or "Hires resize-1" in res and res["Hires resize-1"] != 0)
    return {
        "prompt": res["Prompt"], "negative_prompt": res["Negative prompt"], "steps": int(res["Steps"]),
        "sampler_name": sampler, "scheduler": scheduler, "cfg_scale": float(res["CFG scale"]),
        "seed": int(res["Seed"]), "width": int(res["Size-1"]), "height": int(res["Size-2"]),
        "CLIP_stop_at_last_layers": int(res["Clip skip"]), "enable_hr": enable_hr,
        "hr_scale": float(res.get("Hires upscale", 2.0)), "hr_second_pass_steps": int(res.get("Hires steps", 0)),
        "denoising_strength": float(res.get("Denoising strength", 0.7)),
        "hr_upscaler": res.get("Hires upscaler", "Latent"),
        "sd_model_checkpoint": res.get("Model hash") or res.get("Model"), "model_name": res.get("Model"),
        "lora_hashes": dict(part.strip().rsplit(": ", 1) for part in res["Lora hashes"].split(","))
                       if res.get("Lora hashes") else {},
        "rng": res["RNG"],
    }


def a1111_model_hash(path) -> str:
    """modules/hashes.py: ``sha256(filename)[0:10]`` of the checkpoint file."""
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()[:10]


def a1111_lora_hash(path) -> str:
    """extensions-builtin/Lora: ``addnet_hash_safetensors`` (the sha256 of what follows the header), 12 digits."""
    with open(path, "rb") as fh:
        fh.seek(8 + struct.unpack("<Q", fh.read(8))[0])
        return hashlib.sha256(fh.read()).hexdigest()[:12]
