"""Check functions used inside the labs, and what wires a student's code into the trainers.

    from alignlab import labs
    labs.start("lab1_sft")            # the notebook still has every graded cell?
    labs.check_masked_nll()           # checks the notebook's `masked_nll`, with specific feedback

Each `check_*` takes the student's function (or finds it by name in the notebook), runs it on a
worked example where each common mistake gives a different answer, and prints ✓ (returning
None) or raises
`LabCheckError` saying which mistake it sees. `hidden_*` compare against `alignlab.losses` on
random inputs (the instructor's hidden tests call them with a seed the students do not see).
The checks are plain Python, so any grader — nbgrader, pytest, Otter — can call them.
"""
from .core import (REQUIRED_CELLS, LabCheckError, cell_problems, compare_random, edited_locked_cells, guarded,
                   start, structure_problems)
from .sft import (batch_loss, check_masked_nll, check_response_mask, check_sft_run, hidden_masked_nll,
                  hidden_response_mask, sft_batches, sft_loss)
from .reward_model import (check_bradley_terry_loss, check_ranking_to_pairs, check_reward_model,
                           hidden_bradley_terry_loss, hidden_ranking_to_pairs, rm_batches, rm_loss)
from .ppo import (check_gae, check_kl_penalized_rewards, check_ppo_clip_loss, check_ppo_run, check_ppo_update,
                  hidden_gae, hidden_kl_penalized_rewards, hidden_ppo_clip_loss, ppo_objectives)
from .dpo import (check_dpo_loss, check_dpo_run, check_implicit_reward, dpo_train_loss, hidden_dpo_loss,
                  hidden_implicit_reward, preference_eval)
from .cai import (ScriptedModel, check_ai_preference, check_cai_run, check_critique_and_revise, hidden_ai_preference,
                  hidden_critique_and_revise)
from .prm import (check_prm_run, check_score_solution, check_select_best_of_n, hidden_score_solution,
                  hidden_select_best_of_n)
from .grpo import (check_grpo_advantages, check_grpo_loss, check_grpo_run, grpo_objectives, hidden_grpo_advantages,
                   hidden_grpo_loss)
from .w2s import (check_confidence_loss, check_pgr, check_w2s_run, hidden_confidence_loss, hidden_pgr,
                  w2s_objective)

LABS = tuple(REQUIRED_CELLS)
"""The labs, in order (each is `labs/source/<name>/<name>.ipynb`)."""
