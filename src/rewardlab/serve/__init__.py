"""The HTTP reward server (``rewardlab serve``) and its client.

``RemoteReward`` needs only httpx (a core dependency); the server (``serve.app``) needs the
``serve`` extra (fastapi, uvicorn, prometheus-client).
"""

from rewardlab.serve.client import RemoteReward, RemoteRewardError

__all__ = ["RemoteReward", "RemoteRewardError"]
