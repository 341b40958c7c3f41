import pytest

from audioae.train.schedule import GANSchedule

G, D, GD = "G", "D", "GD"


def table(schedule: GANSchedule, steps: int) -> list[str]:
    return [
        ("G" if schedule.trains_gen(s) else "") + ("D" if schedule.trains_disc(s) else "")
        for s in range(steps)
    ]


def test_default_alternates_like_the_reference():
    # generator on even steps, discriminator on odd ones
    assert table(GANSchedule(), 6) == [G, D, G, D, G, D]


def test_ratio_two_generator_updates_per_discriminator_update():
    assert table(GANSchedule(gen_updates=2, disc_updates=1), 6) == [G, G, D, G, G, D]


def test_joint_updates_both_every_step():
    assert table(GANSchedule(joint=True), 3) == [GD, GD, GD]


def test_no_discriminator_updates():
    assert table(GANSchedule(disc_updates=0), 3) == [G, G, G]


@pytest.mark.parametrize(
    "disc_during_warmup, expected",
    [(True, [G, D, G, D, G, D]), (False, [G, "", G, D, G, D])],
)
def test_warmup(disc_during_warmup, expected):
    s = GANSchedule(warmup_steps=3, disc_during_warmup=disc_during_warmup)
    assert table(s, 6) == expected
    assert [s.adversarial(i) for i in range(5)] == [False, False, False, True, True]


def test_encoder_freezes_after_warmup_only():
    s = GANSchedule(warmup_steps=2, encoder_freeze_on_warmup=True)
    assert [s.encoder_frozen(i) for i in range(4)] == [False, False, True, True]
    # with no warmup it never freezes (the trainer warns)
    s0 = GANSchedule(warmup_steps=0, encoder_freeze_on_warmup=True)
    assert not any(s0.encoder_frozen(i) for i in range(4))


def test_bad_ratio_is_rejected():
    with pytest.raises(ValueError, match="gen_updates"):
        GANSchedule(gen_updates=0)
