"""stable-audio-tools dataset configs (its train.py's `--dataset-config` JSON) to audioae's data
and augment overrides (`audioae-convert MODEL.json --dataset DATASET.json`).

What its loaders do (reference section 8) and where it goes here:

- `dataset_type: audio_dir`, `datasets: [{id, path}]`: one folder is `data=audio_dir
  data.path=PATH`; several are `data=mix` of one audio_dir per `id`, weighted by their file
  counts (it samples the files of all folders uniformly), counted here;
- `random_crop: true` (its default) is what audio_dir does; `false` (every crop from a file's
  start) is unsupported; `drop_last` changes nothing (audioae's batches never end);
- `volume_norm` / `volume_norm_param: [target, range]` (its webdataset loader only) is
  `augment.loudness_lufs=target augment.loudness_range=range augment.max_peak=0.95` (its
  rescale of crops that reach full scale);
- the polarity flip (`PhaseFlipper`, always on) is the model conversion's `augment=sat`;
- `dataset_type: s3 | wds`: the shards themselves are not converted (one warning: give
  `data=webdataset` and its shard list); their augmentation keys are;
- `remove_silence`, `pre_encoded` and `custom_metadata_module` are unsupported (--lenient
  drops them); `epoch_steps`, `resampled_shards`, `silence_threshold`,
  `max_silence_duration`, `latent_crop_length` change nothing here (listed in the notes).
"""

from __future__ import annotations

import os
import re
from typing import Any

from audioae.convert.sat_read import Reader

DATASET_KEYS = (
    "dataset_type", "datasets", "random_crop", "drop_last", "volume_norm", "volume_norm_param",
    "remove_silence", "silence_threshold", "max_silence_duration", "epoch_steps", "pre_encoded",
    "latent_crop_length", "resampled_shards",
)  # fmt: skip
KINDS = ("audio_dir", "s3", "wds")
NO_EFFECT = (
    "drop_last", "epoch_steps", "resampled_shards", "silence_threshold", "max_silence_duration",
    "latent_crop_length",
)  # fmt: skip
WDS_ONLY = ("volume_norm", "volume_norm_param", "remove_silence", "pre_encoded")
PEAK = 0.95  # its VolumeNorm rescales a crop whose peak reaches 1 to this peak


def dataset_overrides(config: Any, source: str = "<dataset>", lenient: bool = False) -> list[str]:
    """Hydra overrides for `audioae-train` that reproduce a stable-audio-tools dataset config
    (after the model config's overrides, which select augment=sat)."""
    r = Reader(source, lenient)
    top = r.mapping(config, "", DATASET_KEYS)
    kind = r.get(top, "dataset_type", "", "str")
    if kind not in KINDS:
        r.fail("dataset_type", f"{kind!r} is not supported; supported: {', '.join(KINDS)}")
    if not r.get(top, "random_crop", "", "bool", True):
        r.unsupported("random_crop", "false (crops at each file's start): audioae crops at random")
    for key in NO_EFFECT:
        if key in top:
            r.notes[key] = "no effect in audioae (endless, deterministic draws)"
    overrides = _folders(r, top) if kind == "audio_dir" else _shards(r, kind)
    if kind == "audio_dir":
        for key in WDS_ONLY:
            if key in top:
                r.notes[key] = "its audio_dir loader ignores it"
        return overrides
    for key in ("remove_silence", "pre_encoded"):
        if r.get(top, key, "", "bool", False):
            r.unsupported(key, "not supported by audioae")
    if r.get(top, "volume_norm", "", "bool", False):
        param = r.get(top, "volume_norm_param", "", "any", [-16.0, 2.0])
        if not (isinstance(param, list) and len(param) == 2):
            r.fail("volume_norm_param", f"expected [target LUFS, range], got {param!r}")
        target, spread = (r.get({"v": v}, "v", "volume_norm_param", "number") for v in param)
        overrides += [
            f"augment.loudness_lufs={float(target)}",
            f"augment.loudness_range={float(spread)}",
            f"augment.max_peak={PEAK}",
        ]
    return overrides


def _folders(r: Reader, top: dict) -> list[str]:
    from audioae.data.audio_dir import find_audio

    datasets = r.get(top, "datasets", "", "any")
    if not isinstance(datasets, list) or not datasets:
        r.fail("datasets", "expected a non-empty list of {id, path}")
    folders: dict[str, str] = {}
    for i, node in enumerate(datasets):
        at = f"datasets[{i}]"
        node = r.mapping(node, at, ("id", "path", "custom_metadata_module"))
        if "custom_metadata_module" in node:
            r.unsupported(f"{at}.custom_metadata_module", "not supported by audioae")
        name, path = r.get(node, "id", at, "str"), r.get(node, "path", at, "str")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name in folders:
            r.fail(f"{at}.id", f"{name!r}: need a unique name of letters, digits and '_'")
        folders[name] = path
    if len(folders) == 1:
        return ["data=audio_dir", f"data.path={next(iter(folders.values()))}"]
    overrides, counts = ["data=mix"], {}
    for name, path in folders.items():
        if not os.path.isdir(os.path.expanduser(path)):
            r.fail(
                f"datasets[{list(folders).index(name)}].path",
                f"{path}: not a folder here (its file count is the mixture weight)",
            )
        counts[name] = len(find_audio(os.path.expanduser(path)))
        overrides += [f"+data@data.sources.{name}=audio_dir", f"data.sources.{name}.path={path}"]
    overrides.append("data.weights={" + ",".join(f"{k}:{v}" for k, v in counts.items()) + "}")
    return overrides


def _shards(r: Reader, kind: str) -> list[str]:
    r.warn(
        "dataset_type",
        f"{kind!r}: the shard list is not converted; add data=webdataset and its shards "
        "(conf/data/webdataset.yaml)",
    )
    return []
