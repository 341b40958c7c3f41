"""stable-audio-tools' side of the lock-step parity test (tests/test_sat_parity.py).

Run by the Python of stable-audio-tools' throwaway venv (docs/benchmarks.md), never imported by
audioae: `python sat_parity_worker.py JOB.json`. It builds SAT's model and
`AutoencoderTrainingWrapper` from the job's model config, saves their initial weights, then
runs `pl.Trainer.fit` over the job's batches and records, after every training step, each
loss term, the gradients of the network that stepped and every weight of both networks.

The step's randomness is taken from the job: the VAE's sampling noise (`torch.randn_like`, one
call a step) and the draws of 0.0.20's silence mask (`torch.rand(B, 1, 1)`, one call a step)
pop from queues, so the audioae side can use the very same numbers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from unittest import mock

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from sat_venv import STUBBED, import_sat


def sat_import():
    """SAT's model and training-wrapper factories."""
    import_sat("models.autoencoders", "training.autoencoders")
    from stable_audio_tools.models.factory import create_model_from_config
    from stable_audio_tools.training.factory import create_training_wrapper_from_config

    return create_model_from_config, create_training_wrapper_from_config


class Queue:
    """Replaces a torch factory: calls of the queued shape pop the next tensor, others pass."""

    def __init__(self, real, tensors: list[torch.Tensor], shape_of):
        self.real, self.tensors, self.shape_of, self.used = real, list(tensors), shape_of, 0

    def __call__(self, *args, **kwargs):
        shape = self.shape_of(*args, **kwargs)
        if self.tensors and tuple(shape) == tuple(self.tensors[0].shape):
            self.used += 1
            return self.tensors.pop(0).clone()
        return self.real(*args, **kwargs)


def rand_shape(*args, **kwargs):
    return args[0] if len(args) == 1 and isinstance(args[0], (tuple, list)) else args


def main(job_path: str) -> None:
    import pytorch_lightning as pl

    job = json.loads(Path(job_path).read_text())
    out = Path(job["out"])
    create_model, create_wrapper = sat_import()
    config = json.loads(Path(job["config"]).read_text())
    torch.manual_seed(job["seed"])
    model = create_model(config)
    wrapper = create_wrapper(config, model)
    if job.get("weights"):
        wrapper.load_state_dict(load_file(job["weights"]), strict=False)
    inputs = load_file(job["inputs"])
    batches = [inputs[f"batch.{i}"] for i in range(job["steps"])]
    record: dict[str, torch.Tensor] = {}
    for name, p in wrapper.autoencoder.state_dict().items():
        record[f"init.autoencoder.{name}"] = p.detach().clone().contiguous()
    for name, p in wrapper.discriminator.state_dict().items():
        record[f"init.discriminator.{name}"] = p.detach().clone().contiguous()

    terms: dict[str, torch.Tensor] = {}

    def capture(multi):
        forward = multi.forward

        def wrapped(info):
            loss, losses = forward(info)
            terms.update({k: v.detach().clone() for k, v in losses.items()})
            terms["total"] = loss.detach().clone()
            return loss, losses

        multi.forward = wrapped

    capture(wrapper.losses_gen)
    capture(wrapper.losses_disc)

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer, module, outputs, batch, idx):
            step = idx
            for k, v in terms.items():
                record[f"s{step}.loss.{k}"] = v.reshape(())
            terms.clear()
            disc = step % 2 == 1
            net = module.discriminator if disc else module.autoencoder
            for name, p in net.named_parameters():
                if p.grad is not None:
                    record[f"s{step}.grad.{name}"] = p.grad.detach().clone()
            for name, p in module.autoencoder.state_dict().items():
                record[f"s{step}.autoencoder.{name}"] = p.detach().clone().contiguous()
            for name, p in module.discriminator.state_dict().items():
                record[f"s{step}.discriminator.{name}"] = p.detach().clone().contiguous()
            for name, p in module.autoencoder_ema.ema_model.state_dict().items():
                record[f"s{step}.ema.{name}"] = p.detach().clone().contiguous()
            opt_gen, opt_disc = module.optimizers()
            record[f"s{step}.lr.generator"] = torch.tensor(opt_gen.param_groups[0]["lr"])
            record[f"s{step}.lr.discriminator"] = torch.tensor(opt_disc.param_groups[0]["lr"])

    class Batches(torch.utils.data.Dataset):
        def __len__(self):
            return len(batches)

        def __getitem__(self, i):
            return batches[i], {}

    noise = Queue(
        torch.randn_like,
        [inputs[f"noise.{i}"] for i in range(job["steps"])],
        lambda t, *a, **k: t.shape,
    )
    silence = Queue(torch.rand, [inputs[f"silence.{i}"] for i in range(job["steps"])], rand_shape)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        precision=32,
        max_steps=job["steps"],
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[Record()],
    )
    loader = torch.utils.data.DataLoader(Batches(), batch_size=None, num_workers=0)
    with mock.patch.object(torch, "randn_like", noise), mock.patch.object(torch, "rand", silence):
        trainer.fit(wrapper, loader)
    save_file(record, str(out))
    meta = {
        "stubbed": STUBBED,
        "lightning": pl.__version__,
        "torch": torch.__version__,
        "noise_used": noise.used,
        "silence_used": silence.used,
        "global_step": trainer.global_step,
    }
    Path(str(out) + ".json").write_text(json.dumps(meta))


if __name__ == "__main__":
    main(sys.argv[1])
