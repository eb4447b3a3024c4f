"""The reward server in tests: a real uvicorn server on 127.0.0.1 in a thread of the test process,
the tiny reward model it serves, and the request limits. Shared by ``test_serve.py`` and
``test_bad_input_serve.py`` (import the fixtures into a test module to use them)."""

from __future__ import annotations

import threading
import time

import pytest

from rewardlab.serve.protocol import Limits

LIMITS = Limits(max_items=16, max_chars=4000, max_body_bytes=64 * 1024)


@pytest.fixture(scope="module")
def rm_dir(tiny_llama_dir, tmp_path_factory):
    """An untrained reward model on the tiny Llama (chat render, last-token pooling), saved."""
    from rewardlab.models.reward_model import RewardModel

    rm = RewardModel.from_backbone(str(tiny_llama_dir), max_length=96)
    return rm.save_pretrained(tmp_path_factory.mktemp("rm"))


@pytest.fixture(scope="module")
def rm(rm_dir):
    from rewardlab.models.reward_model import RewardModel

    return RewardModel.from_pretrained(rm_dir)


class ThreadServer:
    """A real uvicorn server on 127.0.0.1 (free port) in a thread of the test process."""

    def __init__(self, app):
        import uvicorn

        from rewardlab.serve.server import bind_socket

        sock = bind_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "server did not start"
            time.sleep(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(30)
        assert not self.thread.is_alive()


@pytest.fixture(scope="module")
def server(rm):
    from rewardlab.serve.app import create_app

    s = ThreadServer(create_app(rm, model_name="tiny", max_batch=8, max_wait_ms=30, limits=LIMITS))
    yield s
    s.stop()
