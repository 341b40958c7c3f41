"""The GAN schedule: which network steps at which step, and when the adversary is on.

A pure object, tested with a table of steps. `step` is the 0-based index of the optimisation
step about to run (equal to the number of steps completed).

Updates follow a repeating cycle of `gen_updates` generator steps then `disc_updates`
discriminator steps; (1, 1) is stable-audio-tools' alternation (generator on even steps,
discriminator on odd ones). With `joint`, every step updates the discriminator and then the
generator from one autoencoder forward pass, as descript-audio-codec and encodec do.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GANSchedule:
    """warmup_steps: steps before the adversarial and feature-matching terms switch on.
    disc_during_warmup: whether the discriminator already trains during warmup (the reference
        does; with False its first update comes at `warmup_steps`).
    encoder_freeze_on_warmup: from `warmup_steps` on, the encoder and bottleneck are frozen and
        only the decoder learns (needs warmup_steps > 0; with 0 it would freeze from the start,
        which the trainer refuses with a warning instead).
    """

    warmup_steps: int = 0
    disc_during_warmup: bool = True
    encoder_freeze_on_warmup: bool = False
    gen_updates: int = 1
    disc_updates: int = 1
    joint: bool = False

    def __post_init__(self):
        if self.gen_updates < 1 or self.disc_updates < 0 or self.warmup_steps < 0:
            raise ValueError(
                "trainer.schedule: gen_updates must be >= 1, disc_updates and warmup_steps >= 0"
            )

    def warmed_up(self, step: int) -> bool:
        return step >= self.warmup_steps

    def adversarial(self, step: int) -> bool:
        """Are the adversarial and feature-matching terms part of the generator loss?"""
        return self.warmed_up(step)

    def trains_gen(self, step: int) -> bool:
        if self.joint or self.disc_updates == 0:
            return True
        return step % (self.gen_updates + self.disc_updates) < self.gen_updates

    def trains_disc(self, step: int) -> bool:
        if self.disc_updates == 0 or not (self.disc_during_warmup or self.warmed_up(step)):
            return False
        return self.joint or not self.trains_gen(step)

    def encoder_frozen(self, step: int) -> bool:
        return self.encoder_freeze_on_warmup and self.warmup_steps > 0 and self.warmed_up(step)
