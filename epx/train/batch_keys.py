"""The keys epx adds to TRL's generation output (shared by the trainer, dynamic sampling, the
observer and the rollout records, so none of them reaches back into another).

Per completion (first dimension B): ROW_KEY, the INFO_PREFIX facts, KEEP_ROW_KEY, ORIGINAL_KEY.
Per batch (0-dim tensors, which TRL's shuffling and splitting pass through unchanged): the
decisions taken at generation that the loss-time hook needs, so a batch carries what its hooks
need and nothing is left over from one batch for the next.
"""

ROW_KEY = "epx_row"  # a completion's index in its generation batch (process-major)
INFO_PREFIX = "epx_"  # per-completion facts for the rollout records: epx_reward, ...
INFO_NAMES = ("prompt", "reward", "correct", "advantage", "truncated")
KEEP_ROW_KEY = "epx_keep_row"  # 1/0 per completion: inside shaping.ppl_quantile
ORIGINAL_KEY = "epx_unrestricted"  # the advantages before the interventions' mask
SHAPE_AT_LOSS_KEY = "epx_shape_at_loss"  # 0-dim bool: PPL shaping waits for the loss's forward
POSITION_ON_KEY = "epx_position_on"  # 0-dim bool: the position bonus is on for this batch
