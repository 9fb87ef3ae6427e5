"""Image-edit client against a real local HTTP server: retries, failures, identity, resume, alignment."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from dig_stages import align, align_torch, batch, edit_client, edit_output
from dig_stages.edit_fake_server import MODEL, FakeEditServer, fake_edit
from PIL import Image

SIZE = 64


def _crop(seed: int) -> np.ndarray:
    """A small board-like crop: blocks of distinct grey levels and bright pads on a mottled base."""
    rng = np.random.default_rng(seed)
    a = 0.3 + 0.03 * rng.standard_normal((SIZE, SIZE))
    for _ in range(14):
        y, x = rng.integers(0, SIZE - 6, 2)
        h, w = rng.integers(4, 18, 2)
        a[y : y + h, x : x + w] = rng.choice([0.1, 0.6, 0.9])
    rgb = np.stack([a, a * 0.9, a * 0.8], -1)
    return np.clip(rgb * 255, 0, 255).astype(np.uint8)


def _tree(root: Path, layout: str = "cells", n: int = 2) -> Path:
    rels = []
    for i in range(n):
        if layout == "cells":
            rels += [f"crop/IC/c{i}/normal_img/{j:04d}.png" for j in range(2)]
        else:
            rels += [f"cropped/mode{i}/rgb/{j:04d}.png" for j in range(2)]
    for k, rel in enumerate(rels):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_crop(k)).save(p)
    return root


def _client(url: str, sleeps: list[float] | None = None, **kw: object) -> edit_client.EditClient:
    spec = {
        "endpoint": url,
        "concurrency": 2,
        "timeout_s": 10,
        "max_retries": 2,
        "backoff_base_s": 0.5,
        "align_params": {"rot_range_deg": [-1, 1, 0.5], "shift_range": 6},
    } | kw
    cfg = edit_client.ClientConfig.from_spec(spec, env={})
    rec = sleeps if sleeps is not None else []
    return edit_client.EditClient(cfg, sleep=rec.append, seed=0)


def _entries(tmp_path: Path, layout: str = "cells", n: int = 2) -> list[batch.Entry]:
    src = _tree(tmp_path / "in", layout, n)
    return batch.expand(src, tmp_path / "out", layout, ".png", side_dir=tmp_path / "side")


def _leftovers(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*.part")]


def test_happy_path_writes_aligned_images_captions_and_metadata(tmp_path: Path) -> None:
    entries = _entries(tmp_path)
    with FakeEditServer() as srv:
        summary = edit_client.run_batch(entries, _client(srv.url), log=lambda s: None)
    assert summary | {"seconds": 0} == {
        "total": 4,
        "done": 4,
        "skipped": 0,
        "failed": 0,
        "retries": 0,
        "seconds": 0,
        "failed_items": [],
    }
    for e in entries:
        src = np.asarray(Image.open(e.input))
        out = np.asarray(Image.open(e.output))
        assert out.shape == src.shape
        meta = json.loads(Path(e.metadata).read_text())
        t = meta["alignment"]["transform"]
        # the fake edit shifted by (+3, -2) px: alignment finds it and undoes it
        assert abs(t["tx"] - 3) < 0.25 and abs(t["ty"] + 2) < 0.25, t
        assert meta["alignment"]["mi"] > 0.5
        assert meta["alignment"]["path"] == ("torch-cuda" if align_torch.available() else "numpy-cpu")
        expected = np.asarray(fake_edit(Image.fromarray(src), shift=(0, 0))).astype(float)
        inner = (slice(4, -4), slice(4, -4))
        assert np.abs(out[inner].astype(float) - expected[inner]).mean() < 4.0
        assert Path(e.caption).read_text() == edit_client.DEFAULT_PROMPT
    fields = [r["fields"] for r in srv.requests if r["method"] == "POST"]
    assert all(
        f["model"] == MODEL
        and f["size"] == f"{SIZE}x{SIZE}"
        and f["num_inference_steps"] == "30"
        and f["guidance_scale"] == "4.0"
        and f["seed"] == "0"
        and f["prompt"] == edit_client.DEFAULT_PROMPT
        for f in fields
    )
    assert _leftovers(tmp_path) == []


def test_chat_route_and_bearer_token(tmp_path: Path) -> None:
    entries = _entries(tmp_path, "modes", 1)
    with FakeEditServer() as srv:
        cfg = edit_client.ClientConfig.from_spec(
            {"endpoint": srv.url, "route": "chat", "align": False}, env={"HF_TOKEN": "hf_secret"}
        )
        client = edit_client.EditClient(cfg, sleep=lambda s: None)
        client.check_identity()
        summary = edit_client.run_batch(entries, client, log=lambda s: None)
    assert summary["done"] == 2
    posts = [r for r in srv.requests if r["method"] == "POST"]
    assert {r["path"] for r in posts} == {"/v1/chat/completions"}
    assert all(r["authorization"] == "Bearer hf_secret" for r in srv.requests)
    assert posts[0]["fields"]["height"] == SIZE and posts[0]["fields"]["num_inference_steps"] == 30
    assert Path(entries[0].output).exists()


def test_retryable_errors_are_retried_with_backoff_and_retry_after(tmp_path: Path) -> None:
    entries = _entries(tmp_path, n=1)
    sleeps: list[float] = []
    plan = {"0000.png": [500, (429, 7)], "0001.png": ["malformed", "badimage"]}
    with FakeEditServer(plan=plan) as srv:
        summary = edit_client.run_batch(entries, _client(srv.url, sleeps), log=lambda s: None)
    assert summary["done"] == 2 and summary["retries"] == 4
    assert srv.posts("0000.png") == 3 and srv.posts("0001.png") == 3
    assert 7.0 in sleeps  # Retry-After honoured (it exceeds the jittered backoff)
    assert all(0.25 <= s <= 7.0 for s in sleeps), sleeps


def test_persistent_failure_is_bounded_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    entries = _entries(tmp_path, n=1)
    sleeps: list[float] = []
    with FakeEditServer(plan={"0000.png": [503] * 10}) as srv:
        summary = edit_client.run_batch(entries, _client(srv.url, sleeps), log=lambda s: None)
    assert summary["failed"] == 1 and summary["done"] == 1
    assert summary["failed_items"] == ["IC/c0/0000"]
    assert srv.posts("0000.png") == 3  # 1 attempt + max_retries 2
    # exponential: 0.5 s then 1.0 s, each scaled by a jitter in [0.5, 1]
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0
    failed = entries[0]
    assert not Path(failed.output).exists() and not Path(failed.metadata).exists()
    assert not Path(failed.caption).exists()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("status", [400, 401, 404, 413, 422])
def test_client_errors_other_than_429_are_not_retried(tmp_path: Path, status: int) -> None:
    entries = _entries(tmp_path, n=1)[:1]
    with FakeEditServer(plan={"0000.png": [status]}) as srv:
        summary = edit_client.run_batch(entries, _client(srv.url), log=lambda s: None)
    assert summary["failed"] == 1 and summary["retries"] == 0
    assert srv.posts("0000.png") == 1


def test_timeout_is_retried_then_fails(tmp_path: Path) -> None:
    entries = _entries(tmp_path, n=1)[:1]
    with FakeEditServer(plan={"0000.png": ["hang", "hang"]}) as srv:
        client = _client(srv.url, timeout_s=0.3, max_retries=1)
        summary = edit_client.run_batch(entries, client, log=lambda s: None)
    assert summary["failed"] == 1 and srv.posts("0000.png") == 2
    assert not Path(entries[0].output).exists()


def test_identity_check_refuses_a_wrong_model(tmp_path: Path) -> None:
    with FakeEditServer(models=["qwen/qwen-image-edit-2511"]) as srv:
        with pytest.raises(edit_client.IdentityError, match="not nvidia/Qwen-Image-Edit-NVPCB-OVSL2SL"):
            _client(srv.url).check_identity()
    with FakeEditServer() as srv:
        cfg = edit_client.ClientConfig.from_spec(
            {"endpoint": srv.url}, env={"IMAGE_EDIT_MODEL": "qwen-image-edit"}
        )
        with pytest.raises(edit_client.IdentityError, match="'qwen-image-edit' is not acceptable"):
            edit_client.EditClient(cfg).check_identity()
        assert srv.requests == []  # refused before any request
        assert _client(srv.url).check_identity() == [MODEL]


def test_env_overrides_only_when_non_empty() -> None:
    spec = {"endpoint": "http://spec/v1", "model": MODEL}
    cfg = edit_client.ClientConfig.from_spec(spec, env={"IMAGE_EDIT_ENDPOINT": "  ", "IMAGE_EDIT_MODEL": ""})
    assert (cfg.endpoint, cfg.model, cfg.token) == ("http://spec/v1", MODEL, None)
    cfg = edit_client.ClientConfig.from_spec(
        spec, env={"IMAGE_EDIT_ENDPOINT": " http://env/v1 ", "HF_TOKEN": "t"}
    )
    assert (cfg.endpoint, cfg.token) == ("http://env/v1", "t")
    assert "t" not in repr(cfg).split("token")[-1] or "token" not in repr(cfg)


def test_resume_skips_finished_items(tmp_path: Path) -> None:
    entries = _entries(tmp_path)
    with FakeEditServer() as srv:
        assert edit_client.run_batch(entries, _client(srv.url), log=lambda s: None)["done"] == 4
        Path(entries[2].output).unlink()
        summary = edit_client.run_batch(entries, _client(srv.url), log=lambda s: None)
    assert (summary["done"], summary["skipped"]) == (1, 3)
    assert srv.posts() == 5


def test_concurrency_is_bounded(tmp_path: Path) -> None:
    entries = _entries(tmp_path, n=3)
    with FakeEditServer(latency_s=0.05) as srv:
        edit_client.run_batch(entries, _client(srv.url, align=False, concurrency=2), log=lambda s: None)
    assert srv.max_inflight == 2


def test_main_end_to_end_never_logs_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _tree(tmp_path / "in", "cells", 1)
    with FakeEditServer(plan={"0001.png": [400]}) as srv:
        spec = {
            "input_dir": str(src),
            "output_dir": str(tmp_path / "out"),
            "layout": "cells",
            "endpoint": "http://unused.invalid/v1",
            "model": MODEL,
            "prompt": "p",
            "generation": {"num_inference_steps": 30, "guidance_scale": 4.0, "seed": 0},
            "output_ext": ".jpg",
            "concurrency": 2,
            "timeout_s": 10,
            "max_retries": 1,
            "align": True,
            "align_params": {
                "rot_range_deg": [-1.0, 1.0, 0.1],
                "shift_step": 2,
                "bins": 64,
                "interp": "bilinear",
                "no_resize": True,
            },
            "side_dir": str(tmp_path / "side"),
        }
        (tmp_path / "spec.json").write_text(json.dumps(spec))
        monkeypatch.setenv("IMAGE_EDIT_ENDPOINT", srv.url)
        monkeypatch.setenv("HF_TOKEN", "hf_topsecret")
        rc = edit_client.main(["--spec", str(tmp_path / "spec.json")])
        err = capsys.readouterr().err
        assert rc == 1 and "1 of 2 crops failed" in err
        assert (tmp_path / "out/crop/IC/c0/0000.jpg").exists()
        assert not (tmp_path / "out/crop/IC/c0/0001.jpg").exists()
        srv.plan.clear()
        assert edit_client.main(["--spec", str(tmp_path / "spec.json")]) == 0
        err += capsys.readouterr().err
    assert '"skipped": 1' in err and '"done": 1' in err
    assert "hf_topsecret" not in err
    assert all(r["authorization"] == "Bearer hf_topsecret" for r in srv.requests)


def test_main_refuses_wrong_model_and_missing_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _tree(tmp_path / "in", "cells", 1)
    monkeypatch.delenv("IMAGE_EDIT_ENDPOINT", raising=False)
    monkeypatch.delenv("IMAGE_EDIT_MODEL", raising=False)
    with FakeEditServer(models=["qwen/qwen-image-edit-2511"]) as srv:
        args = [
            "--input-dir",
            str(src),
            "--output-dir",
            str(tmp_path / "out"),
            "--layout",
            "cells",
            "--endpoint",
            srv.url,
        ]
        assert edit_client.main(args) == 1
        assert srv.posts() == 0
    assert "ERROR: endpoint" in capsys.readouterr().err
    assert (
        edit_client.main(
            ["--input-dir", str(tmp_path / "none"), "--output-dir", str(tmp_path / "o"), "--layout", "modes"]
        )
        == 1
    )
    assert "ERROR: no per-mode rgb crops" in capsys.readouterr().err


def test_alignment_uses_the_gpu_path_when_torch_sees_cuda(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the selection, not the GPU: align_gpu is the numpy path here, but it must be the one called
    calls: list[int] = []

    def gpu(
        refs: list[np.ndarray], movs: list[np.ndarray], params: align.AlignParams
    ) -> list[align.AlignResult]:
        calls.append(len(refs))
        return [align.align(r, m, params) for r, m in zip(refs, movs, strict=True)]

    monkeypatch.setattr(align_torch, "available", lambda: True)
    monkeypatch.setattr(align_torch, "align_batch", gpu)
    entries = _entries(tmp_path, n=1)
    with FakeEditServer() as srv:
        summary = edit_client.run_batch(entries, _client(srv.url), log=lambda s: None)
    assert summary["done"] == len(entries) == sum(calls)
    for e in entries:
        assert json.loads(Path(e.metadata).read_text())["alignment"]["path"] == "torch-cuda"


def test_a_bug_in_a_worker_stops_the_run_instead_of_hanging_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(items: list, client: edit_client.EditClient) -> list:
        raise RuntimeError("bug in post-processing")

    monkeypatch.setattr(edit_output, "finish", broken)  # where the post-processing workers look it up
    entries = _entries(tmp_path)
    with FakeEditServer() as srv, pytest.raises(RuntimeError, match="bug in post-processing"):
        edit_client.run_batch(entries, _client(srv.url), log=lambda s: None)


def test_request_bytes_are_the_file_itself_when_it_is_an_rgb_png(tmp_path: Path) -> None:
    rgb, grey = tmp_path / "rgb.png", tmp_path / "grey.png"
    Image.fromarray(_crop(0)).save(rgb)
    Image.fromarray(_crop(0)[..., 0]).save(grey)
    data, size = edit_client.request_png(str(rgb))
    assert data == rgb.read_bytes() and size == (SIZE, SIZE)
    data, size = edit_client.request_png(str(grey))  # re-encoded as RGB, same pixels
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "RGB" and np.array_equal(np.asarray(im)[..., 1], _crop(0)[..., 0])
