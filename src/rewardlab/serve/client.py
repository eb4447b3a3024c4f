"""``RemoteReward``: a client of ``rewardlab serve``, callable as a TRL ``GRPOTrainer`` reward function.

TRL calls a reward function as ``f(prompts=..., completions=..., **columns)`` and expects one float
per completion; prompts and completions are strings, or message lists for conversational data.
Each (prompt, completion) becomes one ``/score`` item, rendered on the server exactly as
``rewardlab score`` renders a pair: a string pair as ``{"prompt", "response"}``, a conversation as
``{"messages": prompt + completion}`` (its last message is the assistant's response).
"""

from __future__ import annotations

import os
import time

import httpx

from rewardlab.errors import RewardlabError


class RemoteRewardError(RewardlabError):
    """The server refused a request (4xx: the message names the field) or could not be reached."""


def _as_items(prompts, completions) -> list[dict]:
    if len(prompts) != len(completions):
        raise RemoteRewardError(f"{len(prompts)} prompts but {len(completions)} completions")
    items = []
    for prompt, completion in zip(prompts, completions):
        if isinstance(completion, list):
            head = list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
            items.append({"messages": head + list(completion)})
        else:
            items.append({"prompt": prompt, "response": completion})
    return items


class RemoteReward:
    """Rewards from a running ``rewardlab serve``.

    >>> reward = RemoteReward("http://127.0.0.1:5000")            # doctest: +SKIP
    >>> GRPOTrainer(model=..., reward_funcs=reward, ...)          # doctest: +SKIP

    ``api_key`` (or the variable named by ``api_key_env``) is sent as ``Authorization: Bearer``.
    Items are sent in requests of at most ``batch_size`` (keep it within the server's
    ``--max-items``). Connection failures and 503 answers are retried ``retries`` times with
    exponential backoff; a 4xx raises :class:`RemoteRewardError` with the server's message.
    The client holds a keep-alive connection pool; it is rebuilt after pickling. Served by an
    ensemble, ``last_spread`` holds the member spread of the last call's items; ``drift=`` (a
    :class:`rewardlab.eval.drift.DriftMonitor`) records mean reward, length and spread per call.
    """

    __name__ = "remote_reward"  # TRL logs the rewards under the function's name

    def __init__(self, url: str, *, api_key: str | None = None, api_key_env: str | None = None,
                 timeout: float = 120.0, batch_size: int = 64, retries: int = 3, backoff: float = 0.5,
                 drift=None):
        if api_key is None and api_key_env is not None:
            api_key = os.environ.get(api_key_env) or None
            if api_key is None:
                raise RemoteRewardError(f"api_key_env {api_key_env!r}: that environment variable is not set")
        if batch_size < 1:
            raise RemoteRewardError("batch_size must be at least 1")
        self.url = url.rstrip("/")
        self.api_key, self.timeout, self.batch_size = api_key, timeout, batch_size
        self.retries, self.backoff = retries, backoff
        self._client: httpx.Client | None = None
        self.drift, self.last_spread, self.calls = drift, None, 0

    # ------------------------------------------------------------------ TRL interface
    def __call__(self, prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        rewards = self.score_items(_as_items(prompts, completions))
        self.calls += 1
        if self.drift is not None:
            lengths = ([len(ids) for ids in completion_ids] if completion_ids is not None
                       else [len(c) if isinstance(c, str) else sum(len(str(m.get("content", ""))) for m in c)
                             for c in completions])
            step = getattr(kwargs.get("trainer_state"), "global_step", None)
            self.drift.record(self.calls if step is None else step, rewards, lengths, self.last_spread,
                              length_unit="tokens" if completion_ids is not None else "characters")
        return rewards

    # ------------------------------------------------------------------ plain calls
    def score(self, prompts, responses) -> list[float]:
        """Rewards of (prompt, response) pairs, as ``RewardModel.score`` gives them."""
        return self.score_items(_as_items(prompts, responses))

    def score_items(self, items: list[dict]) -> list[float]:
        return self._rewards("/score", "items", items)

    def get_reward(self, queries: list[str]) -> list[float]:
        """OpenRLHF's protocol: rewards of full (already rendered) texts."""
        return self._rewards("/get_reward", "query", queries)

    def _rewards(self, path: str, field: str, values: list) -> list[float]:
        """POST ``values`` under ``field`` in requests of at most ``batch_size``; the rewards in order."""
        rewards: list[float] = []
        spread: list[float] | None = []
        for start in range(0, len(values), self.batch_size):
            answer = self._post(path, {field: values[start:start + self.batch_size]})
            rewards.extend(float(r) for r in answer["rewards"])
            if spread is not None and "spread" in answer:  # an ensemble server
                spread.extend(float(v) for v in answer["spread"])
            else:
                spread = None
        self.last_spread = spread
        return rewards

    def health(self) -> dict:
        response = self._http().get(f"{self.url}/health")
        response.raise_for_status()
        return response.json()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ------------------------------------------------------------------ plumbing
    def _http(self) -> httpx.Client:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._client = httpx.Client(timeout=self.timeout, headers=headers)
        return self._client

    def _post(self, path: str, payload: dict) -> dict:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                response = self._http().post(f"{self.url}{path}", json=payload)
            except httpx.TransportError as e:
                if attempt == self.retries:
                    raise RemoteRewardError(f"{self.url}{path}: {e!r}") from e
            else:
                if response.status_code == 200:
                    return response.json()
                if response.status_code != 503 or attempt == self.retries:
                    try:
                        message = response.json()["error"]["message"]
                    except (ValueError, KeyError, TypeError):
                        message = response.text[:200]
                    raise RemoteRewardError(f"{self.url}{path}: HTTP {response.status_code}: {message}")
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_client"] = None
        return state
