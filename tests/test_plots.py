"""The plot helpers put each curve on the panel its title names."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from alignlab import plots  # noqa: E402


def _history(n: int = 6) -> list[dict]:
    rows = [{"step": s, "score": 0.1 * s, "gold": -0.1 * s, "kl": 0.3 * s, "beta": 0.05 + 0.01 * s,
             "length": 20.0 + s, "clip_frac": 0.01 * s} for s in range(1, n + 1)]
    rows[2] |= {"heldout_gold": 0.5, "heldout_gold_se": 0.1}
    return rows


def test_ppo_curves_put_each_key_and_the_kl_target_on_its_own_panel():
    h = _history()
    axes = plots.ppo_curves(h, target_kl=1.5)
    for ax, (key, title) in zip(axes, plots.PPO_PANELS):
        assert ax.get_title() == title
        assert np.allclose(ax.lines[0].get_ydata(), [r[key] for r in h]), key
    kl, others = axes[2], [ax for i, ax in enumerate(axes) if i != 2]
    assert any(np.allclose(line.get_ydata(), 1.5) and line.get_linestyle() == ":" for line in kl.lines)
    assert not any(line.get_linestyle() == ":" for ax in others for line in ax.lines)  # the target only where KL is
    gold = axes[1]
    assert len(gold.containers) == 1 and gold.get_legend() is not None  # the held-out evaluation, with error bars
    plt.close("all")


def test_ppo_curves_without_a_target_or_evaluations_draw_only_the_history():
    axes = plots.ppo_curves([{k: v for k, v in r.items() if not k.startswith("heldout")} for r in _history()])
    assert all(len(ax.lines) == 1 for ax in axes) and not axes[1].containers
    plt.close("all")


def test_pipeline_names_each_step_and_its_chapter_in_order():
    ax = plots.pipeline()
    texts = [t.get_text() for t in ax.texts]
    for i, (title, _, where) in enumerate(plots.PIPELINE):
        assert any(t.startswith(title) for t in texts) and where in texts
    boxes = sorted((t for t in ax.texts if t.get_bbox_patch() is not None), key=lambda t: t.get_position()[0])
    assert [t.get_text().split("\n")[0] for t in boxes] == [s[0] for s in plots.PIPELINE]  # left to right
    assert sum(1 for t in ax.texts if getattr(t, "arrow_patch", None) is not None) == 3  # two steps, and DPO's shortcut
    plt.close("all")


def test_dpo_curves_put_each_key_on_its_panel():
    h = [{"step": s, "loss": 0.7 - 0.01 * s, "accuracy": 0.5 + 0.01 * s, "chosen_reward": -0.01 * s,
          "rejected_reward": -0.05 * s} for s in range(1, 6)]
    loss, acc, rewards = plots.dpo_curves(h)
    assert np.allclose(loss.lines[0].get_ydata(), [r["loss"] for r in h]) and np.allclose(loss.lines[1].get_ydata(), np.log(2))
    assert np.allclose(acc.lines[0].get_ydata(), [r["accuracy"] for r in h])
    assert [line.get_label() for line in rewards.lines[:2]] == ["chosen", "rejected"]
    assert np.allclose(rewards.lines[1].get_ydata(), [r["rejected_reward"] for r in h])
    plt.close("all")


def test_frontier_places_each_run_at_its_kl_and_gain():
    pts = {"DPO": [("β=0.1", {"kl": 0.7, "gain": 0.01, "gain_se": 0.03}), ("β=1", {"kl": 0.1, "gain": 0.03, "gain_se": 0.02})]}
    ax = plots.frontier(pts, curve=([0.0, 0.2], [0.0, -0.1], "best-of-N"))
    offsets = ax.containers[0].lines[0].get_xydata()
    assert np.allclose(offsets, [[0.7, 0.01], [0.1, 0.03]])
    assert [t.get_text() for t in ax.texts] == ["β=0.1", "β=1"]
    bon = [line for line in ax.lines if line.get_label() == "best-of-N"]
    assert len(bon) == 1 and np.allclose(bon[0].get_xydata(), [[0.0, 0.0], [0.2, -0.1]])
    plt.close("all")


def test_gao_panel_draws_each_series_with_its_fit_in_the_same_colour():
    points = {"PPO gold": (np.array([0.5, 1.0]), np.array([0.1, 0.15]), "rl"),
              "BoN proxy": (np.array([0.3, 0.9]), np.array([0.2, 0.4]), "bon")}
    fits = {"PPO gold": {"alpha": 0.2, "beta": 0.1}, "BoN proxy": {"alpha": 0.5, "beta": 0.05}}
    ax = plots.gao_panel(points, fits, title="proxy = rm")
    marks, curve = ax.lines[0], ax.lines[1]
    assert np.allclose(marks.get_xydata(), [[0.5, 0.1], [1.0, 0.15]]) and marks.get_color() == curve.get_color()
    xs = curve.get_xdata()
    assert np.allclose(curve.get_ydata(), 0.2 * xs - 0.1 * np.where(xs > 0, xs * np.log(np.maximum(xs, 1e-300)), 0))
    assert np.allclose(ax.lines[3].get_ydata(), 0.5 * ax.lines[3].get_xdata() - 0.05 * ax.lines[3].get_xdata() ** 2)
    assert ax.get_title() == "proxy = rm"
    plt.close("all")


def test_heldout_along_runs_plots_only_the_evaluated_rows_against_their_kl():
    rows = [r | {"heldout_gain": 0.3, "heldout_gain_se": 0.1} if "heldout_gold" in r else r for r in _history()]
    ax = plots.heldout_along_runs({"β = 0.2": rows})
    assert np.allclose(ax.containers[0].lines[0].get_xydata(), [[rows[2]["kl"], 0.3]])
    assert ax.get_legend().get_texts()[0].get_text() == "β = 0.2"
    plt.close("all")


def test_pareto_places_each_model_at_its_harmlessness_and_helpfulness():
    ax = plots.pareto({"SFT": (0.8, 0.25), "helpful-only": (-1.0, -0.02)}, errors={"SFT": (0.1, 0.03)})
    xy = [c.lines[0].get_xydata()[0].tolist() for c in ax.containers]
    assert np.allclose(xy, [[0.8, 0.25], [-1.0, -0.02]])
    assert [t.get_text() for t in ax.texts] == ["SFT", "helpful-only"]
    plt.close("all")
