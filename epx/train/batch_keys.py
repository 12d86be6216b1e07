"""The keys epx adds to TRL's generation output, one row per completion (shared by the trainer,
dynamic sampling and the rollout records, so none of them reaches back into another)."""

ROW_KEY = "epx_row"  # a completion's index in its generation batch (process-major)
INFO_PREFIX = "epx_"  # per-completion facts for the rollout records: epx_reward, ...
INFO_NAMES = ("prompt", "reward", "correct", "advantage", "truncated")
KEEP_ROW_KEY = "epx_keep_row"  # 1/0 per completion: inside shaping.ppl_quantile
ORIGINAL_KEY = "epx_unrestricted"  # the advantages before the interventions' mask
