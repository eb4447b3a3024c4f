"""Critic-RM (METHODS §5): self-generated critiques, consistency filtering, refinement, joint
critique + reward training, and scoring averaged over critiques. See docs/critic_rm.md."""
