import torch

from training.image_pool import ImagePool


def batch(value: float) -> torch.Tensor:
    return torch.full((1, 3, 2, 2), value)


def test_size_zero_passes_through() -> None:
    pool = ImagePool(0)
    x = batch(1.0)
    assert torch.equal(pool.query(x), x)
    assert pool.images == []


def test_fills_then_mixes_history() -> None:
    pool = ImagePool(3, seed=1)
    for v in range(3):  # while filling, the newest image comes straight back
        assert float(pool.query(batch(v))[0, 0, 0, 0]) == v
    sent = [100.0 + v for v in range(200)]
    returned = [float(pool.query(batch(v))[0, 0, 0, 0]) for v in sent]
    from_history = sum(r != s for r, s in zip(returned, sent, strict=True))
    assert 60 < from_history < 140  # about half come from the history
    assert len(pool.images) == 3


def test_state_dict_resumes_the_same_choices() -> None:
    pool = ImagePool(4, seed=7)
    for v in range(10):
        pool.query(batch(v))
    saved = pool.state_dict()
    expected = [pool.query(batch(50 + v)) for v in range(20)]
    restored = ImagePool(4, seed=999)
    restored.load_state_dict(saved, torch.device("cpu"))
    got = [restored.query(batch(50 + v)) for v in range(20)]
    assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True))


def test_query_detaches() -> None:
    x = batch(1.0).requires_grad_()
    assert not ImagePool(2).query(x * 2).requires_grad
