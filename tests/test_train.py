"""Real (tiny) training runs: pretraining loss falls, online runs resume exactly, checkpoints round-trip."""
import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from crossover import cli
from crossover.cli import main
from crossover.errors import CrossoverError
from crossover.train.checkpoint import load_checkpoint, save_checkpoint
from crossover.data.collect import EpisodeJob, PolicySpec, run_episode
from crossover.data.sampler import TrajectoryBuffer
from crossover.agent.agent import Agent
from crossover.train import online
from crossover.train.online import (DEMO_METHOD, AdaptConfig, adapt, add_demos, learn_from_demos, new_agent,
                                    sample_batch)
from crossover.train.pretrain import PretrainConfig, pretrain

QUIET = dict(progress=lambda _: None)
TIMING = ("wall_s", "cpu_s", "eval_wall_s", "eval_cpu_s")  # clock readings: the only columns a rerun may change


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def pretrained(small_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("pre") / "run"
    pretrain(PretrainConfig([str(small_dataset)], steps=60, eval_every=20), out, **QUIET)
    return out


def test_pretraining_loss_falls_on_real_data(pretrained):
    rows = _rows(pretrained / "train.csv")
    assert [int(r["step"]) for r in rows] == [20, 40, 60]
    assert float(rows[-1]["consistency_loss"]) < float(rows[0]["consistency_loss"])
    assert float(rows[-1]["reward_loss"]) < float(rows[0]["reward_loss"])
    held = _rows(pretrained / "heldout.csv")
    assert "reach-v3/consistency" in held[0] and "drawer-close-v3/reward_ce" in held[0]


def test_pretraining_extended_with_more_steps_equals_the_longer_run(small_dataset, pretrained, tmp_path):
    import shutil

    shutil.copytree(pretrained, tmp_path / "extended")
    cfg = PretrainConfig([str(small_dataset)], steps=80, eval_every=20)
    said = []
    pretrain(cfg, tmp_path / "extended", resume=True, progress=said.append)
    assert any("steps 60 -> 80" in line for line in said)
    pretrain(cfg, tmp_path / "straight", **QUIET)
    a, b = (load_file(str(tmp_path / run / "checkpoint/model.safetensors")) for run in ("extended", "straight"))
    assert all(torch.equal(a[k], b[k]) for k in a), "60 + 20 updates differ from 80 in one go"
    assert [int(r["step"]) for r in _rows(tmp_path / "extended/train.csv")] == [20, 40, 60, 80]
    with pytest.raises(CrossoverError, match=r"different settings \(steps\)"):  # a shorter run is not a resume
        pretrain(PretrainConfig([str(small_dataset)], steps=40, eval_every=20), tmp_path / "extended", resume=True,
                 **QUIET)


def test_checkpoint_round_trip(pretrained, tmp_path):
    agent, state, _ = load_checkpoint(pretrained / "checkpoint")
    assert state["tasks"] == ["reach-v3", "drawer-close-v3"]
    save_checkpoint(tmp_path / "copy", agent, state)
    a, b = load_file(str(pretrained / "checkpoint/model.safetensors")), load_file(str(tmp_path / "copy/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((tmp_path / "copy/config.json").read_text()) == json.loads((pretrained / "checkpoint/config.json").read_text())


def test_damaged_checkpoint_is_named(pretrained, tmp_path):
    shutil.copytree(pretrained / "checkpoint", tmp_path / "ck")
    (tmp_path / "ck/model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CrossoverError, match="model.safetensors"):
        load_checkpoint(tmp_path / "ck")
    for file, text, named in (("state.json", "[1]", "state.json: expected a JSON object, got list"),
                              ("state.json", "{", "state.json: cannot be read"),
                              ("config.json", "{", "config.json: cannot be read")):
        (tmp_path / "ck" / file).write_text(text)
        with pytest.raises(CrossoverError, match=named):
            load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck/config.json").unlink()
    with pytest.raises(CrossoverError, match="config.json"):
        load_checkpoint(tmp_path / "ck")


@pytest.mark.parametrize("file, edit, named", [
    ("config.json", lambda c: c["model"].update(latent_dim="big"),
     "WorldModelConfig: field 'latent_dim' must be int, got 'big'"),
    ("config.json", lambda c: c["agent"].update(discount=2), "AgentConfig.discount must be in (0, 1], got 2"),
    ("config.json", lambda c: c["agent"].update(lr=None), "AgentConfig: field 'lr' must be float, got None"),
    ("config.json", lambda c: c["agent"].update(speed=1), "unknown AgentConfig fields ['speed']"),
    ("config.json", lambda c: c.pop("seed"), "missing field 'seed'"),
    ("state.json", lambda s: s.update(updates="60"), "field 'updates' must be int, got '60'"),
    ("state.json", lambda s: s.update(wall_s=True), "field 'wall_s' must be float, got True"),
    ("state.json", lambda s: s.update(rng=None), "field 'rng' must be dict, got None"),
    ("state.json", lambda s: s.update(data_digest=7), "field 'data_digest' must be str or null, got 7"),
])
def test_a_checkpoint_json_of_wrong_types_is_named(pretrained, tmp_path, file, edit, named):
    # Hand-edited or from another version: refused by file and field, not met as a TypeError inside the run.
    shutil.copytree(pretrained / "checkpoint", tmp_path / "ck")
    held = json.loads((tmp_path / "ck" / file).read_text())
    edit(held)
    (tmp_path / "ck" / file).write_text(json.dumps(held))
    with pytest.raises(CrossoverError) as e:
        load_checkpoint(tmp_path / "ck")
    assert str(e.value).startswith(str(tmp_path / "ck" / file)) and named in str(e.value)


TINY = ["--task", "reach-v3", "--steps", "90", "--eval-every", "30", "--eval-episodes", "1",
        "--episode-length", "30", "--seed", "3", "--seed-steps", "30"]


def test_adapt_resume_after_sigkill_is_exact(tmp_path):
    main(["adapt", *TINY, "--out", str(tmp_path / "clean")])
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "crossover.cli", "adapt", *TINY, "--out", str(killed)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and len(_rows(killed / "eval.csv") if (killed / "eval.csv").exists() else []) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert main(["adapt", *TINY, "--out", str(killed), "--resume"]) == 0
    killed_rows, clean_rows = (
        [{k: v for k, v in r.items() if k not in TIMING} for r in _rows(run / "eval.csv")]
        for run in (killed, tmp_path / "clean"))
    assert killed_rows == clean_rows  # all but the clocks
    a = load_file(str(tmp_path / "clean/checkpoint/model.safetensors"))
    b = load_file(str(killed / "checkpoint/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "weights after resume differ from the uninterrupted run"


def _killed_in_episode(n, cfg, out, monkeypatch):
    """Start adapt run `cfg` in `out`, checkpointing after every episode, and stop it in its n-th episode."""
    from crossover.train import online

    monkeypatch.setattr(online, "CHECKPOINT_EVERY_S", 0.0)
    real_episode, calls = online._train_episode, []

    def dies(*args):
        calls.append(1)
        if len(calls) == n:
            raise KeyboardInterrupt  # stands in for a kill: the run stops between checkpoints
        return real_episode(*args)

    monkeypatch.setattr(online, "_train_episode", dies)
    with pytest.raises(KeyboardInterrupt):
        adapt(cfg, out, **QUIET)
    monkeypatch.setattr(online, "_train_episode", real_episode)


@pytest.mark.parametrize("demos", [0, 2])
def test_adapt_resumes_exactly_from_a_checkpoint_between_evaluations(tmp_path, monkeypatch, demos):
    cfg = AdaptConfig("reach-v3", steps=90, eval_every=90, eval_episodes=1, episode_length=30, seed=3, seed_steps=30,
                      demos=demos)
    monkeypatch.setitem(DEMO_METHOD, "handover_steps", 60)  # with demos, the episode at step 30 is a coin toss
    adapt(cfg, tmp_path / "clean", **QUIET)
    _killed_in_episode(3, cfg, tmp_path / "killed", monkeypatch)
    said = []
    adapt(cfg, tmp_path / "killed", resume=True, progress=said.append)
    assert "at env step 60" in said[0]  # from the periodic checkpoint, not the evaluation at step 0
    for csv_name in ("train.csv", "eval.csv"):  # one clean curve: no row lost or repeated around the resume
        clean, resumed = (_rows(tmp_path / run / csv_name) for run in ("clean", "killed"))
        assert [r["step"] for r in resumed] == [r["step"] for r in clean], csv_name
        assert [r.get("acted_by") for r in resumed] == [r.get("acted_by") for r in clean]
    a = load_file(str(tmp_path / "clean/checkpoint/model.safetensors"))
    b = load_file(str(tmp_path / "killed/checkpoint/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "weights after resume differ from the uninterrupted run"
    if demos:  # learned from once, not again on resuming; a run whose demonstrations were used otherwise stops
        assert len(_rows(tmp_path / "killed/demos.csv")) == 1
        state_file = tmp_path / "killed/checkpoint/state.json"
        state = json.loads(state_file.read_text())
        state_file.write_text(json.dumps({**state, "demo_method": {**state["demo_method"], "batch_fraction": 0.5}}))
        with pytest.raises(CrossoverError, match="demonstrations were used as"):
            adapt(cfg, tmp_path / "killed", resume=True, **QUIET)
        state_file.write_text(json.dumps(state))  # and one without its prior from after the demos stops too
        shutil.rmtree(tmp_path / "killed" / online.DEMO_PRIOR)
        with pytest.raises(CrossoverError, match=f"{online.DEMO_PRIOR}: missing"):
            adapt(cfg, tmp_path / "killed", resume=True, **QUIET)
    (tmp_path / "killed/checkpoint/buffer.safetensors").unlink()  # nor does one without its replay buffer
    with pytest.raises(CrossoverError, match="buffer.safetensors: missing"):
        adapt(cfg, tmp_path / "killed", resume=True, **QUIET)


def test_fine_tuning_resumes_from_its_weights_moved_elsewhere_but_not_from_other_weights(pretrained, tmp_path,
                                                                                         monkeypatch):
    # A study folder moved, or named by another path, gives its runs another `init`; a run resumes if that folder
    # holds the very weights it started from, which its checkpoint records by digest.
    first = tmp_path / "first"
    shutil.copytree(pretrained, first)
    cfg = AdaptConfig("push-v3", init=str(first), steps=60, eval_every=60, eval_episodes=1, episode_length=20)
    run = tmp_path / "ft"
    _killed_in_episode(2, cfg, run, monkeypatch)
    moved = first.rename(tmp_path / "moved")
    other = tmp_path / "other"  # same shapes, other weights
    shutil.copytree(moved, other)
    weights = load_file(str(other / "checkpoint/model.safetensors"))
    name = next(k for k in weights if k.startswith("model."))
    weights[name] = weights[name] + 1.0
    save_file(weights, str(other / "checkpoint/model.safetensors"))
    with pytest.raises(CrossoverError, match=r"different settings \(init\)"):
        adapt(dataclasses.replace(cfg, init=str(other)), run, resume=True, **QUIET)
    said = []
    r = adapt(dataclasses.replace(cfg, init=str(moved)), run, resume=True, progress=said.append)
    assert any("same content" in line for line in said) and r.env_steps == 60
    assert json.loads((run / "adapt_config.json").read_text())["init"] == str(moved)


def test_a_run_begun_before_digests_were_recorded_resumes_only_from_the_same_folder(tmp_path, monkeypatch):
    from crossover.train.online import _same_start

    ckpt = tmp_path / "run" / "checkpoint"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text(json.dumps({"init_info": {"init": "pre"}}))  # no weights_sha256
    monkeypatch.chdir(tmp_path)
    assert _same_start(ckpt, "pre", str(tmp_path / "pre"))  # the same folder, named relative or absolute
    assert not _same_start(ckpt, "pre", str(tmp_path / "moved"))
    assert not _same_start(ckpt, "scratch", "pre")


def test_learning_curve_does_not_depend_on_how_often_it_is_evaluated(tmp_path):
    # Evaluation draws its planner noise from its own seeds, so evaluating more often changes nothing in training,
    # and the step both runs evaluate gets the same figure.
    base = dict(steps=120, eval_episodes=1, episode_length=30, seed=3, seed_steps=30)
    often = adapt(AdaptConfig("reach-v3", eval_every=40, **base), tmp_path / "often", **QUIET)
    rarely = adapt(AdaptConfig("reach-v3", eval_every=120, **base), tmp_path / "rarely", **QUIET)
    # Evaluations keep to the grid 40, 80, 120 (at the first episode end past each), not 40 after the last one.
    assert [p["env_steps"] for p in often.curve] == [0, 60, 90, 120]
    assert [p["env_steps"] for p in rarely.curve] == [0, 120]
    # The time spent evaluating is kept, cumulatively, apart from the rest.
    for r in (often, rarely):
        evals = [p["eval_wall_s"] for p in r.curve]
        assert all(0 < e <= p["wall_s"] for e, p in zip(evals, r.curve)) and evals == sorted(evals)
        assert r.eval_wall_s == pytest.approx(evals[-1], abs=1e-3) and 0 < r.eval_cpu_s <= r.cpu_s
    last_often, last_rarely = ({k: v for k, v in c[-1].items() if k not in TIMING} for c in
                               (often.curve, rarely.curve))
    assert last_often == last_rarely
    a = load_file(str(tmp_path / "often/checkpoint/model.safetensors"))
    b = load_file(str(tmp_path / "rarely/checkpoint/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a), "evaluating more often changed the training run"


def test_adapt_refuses_to_overwrite_and_checks_resume_settings(tmp_path):
    out = tmp_path / "run"
    adapt(AdaptConfig("reach-v3", steps=0, eval_episodes=1, episode_length=10), out, **QUIET)
    with pytest.raises(CrossoverError, match="--resume"):
        adapt(AdaptConfig("reach-v3", steps=0, eval_episodes=1, episode_length=10), out, **QUIET)
    with pytest.raises(CrossoverError, match="steps"):
        adapt(AdaptConfig("reach-v3", steps=30, eval_episodes=1, episode_length=10), out, resume=True, **QUIET)
    said = []
    adapt(AdaptConfig("reach-v3", steps=0, eval_episodes=1, episode_length=10), tmp_path / "new", resume=True,
          progress=said.append)
    assert f"{tmp_path / 'new'}: no run there to resume; starting a new one" in said


def test_fine_tune_adds_the_new_task_with_demos(pretrained, tmp_path, capsys):
    r = adapt(AdaptConfig("push-v3", init=str(pretrained), steps=20, demos=1, eval_every=20, eval_episodes=1,
                          episode_length=20), tmp_path / "ft", **QUIET)
    state = json.loads((tmp_path / "ft/checkpoint/state.json").read_text())
    assert state["tasks"] == ["reach-v3", "drawer-close-v3", "push-v3"] and state["task_index"] == 2
    assert state["init_info"]["embedding_from"] in ("reach-v3", "drawer-close-v3")
    assert [p["env_steps"] for p in r.curve] == [0, 20]
    # `crossover evaluate` acts as the run's own evaluations did, within the run's trust region around the prior.
    assert main(["evaluate", str(tmp_path / "ft"), "--task", "push-v3", "--episodes", "1", "--episode-length",
                 "20"]) == 0
    assert f"{r.curve[-1]['return']:.1f}" in capsys.readouterr().out


def test_demonstrations_teach_the_prior_before_the_first_step_and_fill_a_quarter_of_each_batch(tmp_path,
                                                                                                monkeypatch):
    # Phase 1 on real expert episodes: the policy prior's error on the demonstrated actions falls.
    cfg = AdaptConfig("reach-v3", demos=2, episode_length=20, seed=3)
    agent, _ = new_agent(cfg)
    buffer = TrajectoryBuffer(["reach-v3"], 39, 4, 100)
    add_demos(cfg, buffer, agent.cfg.horizon)
    demo = buffer.sample(256, agent.cfg.horizon, np.random.default_rng(0))

    def cloning_error():
        with torch.no_grad():
            z = agent.model.encode(torch.from_numpy(demo.obs[0]), torch.zeros(256, dtype=torch.long))
            return (agent.model.pi(z, torch.zeros(256, dtype=torch.long)).mean - torch.from_numpy(demo.action[0])) \
                .square().mean().item()

    before = cloning_error()
    learn_from_demos(agent, buffer, np.random.default_rng(1))
    assert cloning_error() < 0.5 * before and agent.cfg.bc_coef == 0  # cloning is for the demonstrations only
    # Phase 3: 64 of 256 windows come from the demonstrations, the rest from the agent's own episodes once it has
    # one (before that, from the demonstrations too).
    demo_rows = {row.tobytes() for row in buffer.state()["obs"]}  # two episodes of 21 observations
    anchor = new_agent(cfg)[0]
    for own_episodes, demo_windows in ((0, 256), (1, 64)):
        if own_episodes:
            buffer.add_episode(run_episode(EpisodeJob("reach-v3", -1, 0, PolicySpec("random"), 5), 20),
                               agent.cfg.horizon)
        batch = sample_batch(cfg, agent, buffer, np.random.default_rng(2))
        from_demos = [batch["obs"][0, j].numpy().tobytes() in demo_rows for j in range(256)]
        assert batch["obs"].shape[1] == 256 and from_demos == [True] * demo_windows + [False] * (256 - demo_windows)
        # The cloning term stays on the batch's demonstration share (its first 64 windows), and on that only.
        assert batch["bc_weight"].tolist() == [DEMO_METHOD["bc_coef"]] * 64 + [0.0] * 192
        # An anchor (DEMO_METHOD 6) has nothing to add while all windows are the demonstrations'.
        with_anchor = sample_batch(cfg, agent, buffer, np.random.default_rng(2), anchor)
        assert ("bc_target" in with_anchor) == bool(own_episodes)
    # Anchored, the other 192 windows are cloned too, toward the anchor's mean actions.
    batch = sample_batch(cfg, agent, buffer, np.random.default_rng(2), anchor)
    assert batch["bc_weight"].tolist() == [DEMO_METHOD["bc_coef"]] * 64 + [DEMO_METHOD["anchor_coef"]] * 192
    assert torch.equal(batch["bc_target"][:, :64], batch["action"][:, :64])
    assert torch.equal(batch["bc_target"][:, 64:], online.prior_means(anchor, batch["obs"][:-1, 64:], batch["task"][64:]))
    assert not torch.allclose(batch["bc_target"][:, 64:], online.prior_means(agent, batch["obs"][:-1, 64:],
                                                                             batch["task"][64:]))
    # The whole run: its demonstration updates are logged (2 per demonstrated step), its seed phase acts with the
    # prior, the planner acts once the handover is over (here after 20 steps), and every update after the seed
    # phase takes a batch from sample_batch.
    # Online, while trust is below 1, the prior's max-Q term is off (q_weight 0) and the prior is anchored to the
    # one after phase 1, kept in the run's folder; phase 1 has neither.
    training_prior, batches, q_weights, anchored = [], [], [], []  # (evaluation acts with a generator of its own)
    real_act, real_sample, real_update = Agent.act, online.sample_batch, Agent.update
    monkeypatch.setattr(Agent, "act", lambda self, *a, **k: training_prior.append(
        k.get("prior_only") and k.get("generator") is None) or real_act(self, *a, **k))
    monkeypatch.setattr(online, "sample_batch", lambda *a: batches.append(1) or real_sample(*a))
    monkeypatch.setattr(Agent, "update", lambda self, b: q_weights.append(b.get("q_weight"))
                        or anchored.append("bc_target" in b) or real_update(self, b))
    monkeypatch.setitem(DEMO_METHOD, "handover_steps", 20)
    r = adapt(dataclasses.replace(cfg, steps=40, eval_every=40, eval_episodes=1, seed_steps=20), tmp_path / "d",
              **QUIET)
    assert _rows(tmp_path / "d/demos.csv")[0]["updates"] == "80" and r.curve[-1]["env_steps"] == 40
    train = _rows(tmp_path / "d/train.csv")
    assert [row["acted_by"] for row in train] == ["prior", "planner"] and training_prior.count(True) == 20
    assert len(batches) == int(train[-1]["updates"]) > 0
    online_weights = q_weights[-len(batches):]  # (before them: phase 1's 80 and the warm-up's, all without)
    assert [float(w) for w in online_weights] == [0.0] * len(batches) and set(q_weights[:-len(batches)]) == {None}
    assert set(anchored[-len(batches):]) == {True} and set(anchored[:-len(batches)]) == {False}
    assert (tmp_path / "d" / online.DEMO_PRIOR / "model.safetensors").exists()


def test_the_prior_hands_over_to_the_planner_linearly():
    # Scratch's seed phase is the prior's alone; then its share of episodes falls from 1 to 0 over handover_steps.
    cfg, rng, n = AdaptConfig("reach-v3", demos=5), np.random.default_rng(0), DEMO_METHOD["handover_steps"]
    assert online._prior_acts(cfg, cfg.random_steps - 1, rng) and not online._prior_acts(cfg, n, rng)
    fine_tune = AdaptConfig("reach-v3", init="runs/pre", demos=5)  # no seed phase: a share of 1 at step 0
    assert fine_tune.random_steps == 0 and all(online._prior_acts(fine_tune, 0, rng) for _ in range(100))
    for at, share in ((n // 4, 0.75), (n // 2, 0.5), (3 * n // 4, 0.25)):
        assert abs(np.mean([online._prior_acts(cfg, at, rng) for _ in range(4000)]) - share) < 0.03


def test_the_planner_of_demos_runs_widens_its_trust_region_geometrically():
    # From the prior's neighbourhood (min_std) at step 0 to the plain planner (None) at trust_steps; never for
    # runs without demos.
    agent, n = new_agent(AdaptConfig("reach-v3"))[0], DEMO_METHOD["trust_steps"]
    low, high = agent.cfg.min_std, agent.cfg.max_std
    assert online.trust_std(DEMO_METHOD, agent, 0) == pytest.approx(low)
    assert online.trust_std(DEMO_METHOD, agent, n // 2) == pytest.approx((low * high) ** 0.5)
    assert online.trust_std(DEMO_METHOD, agent, n) is None and online.trust_std(None, agent, 0) is None


def test_bad_adapt_input_is_one_line(capsys, tmp_path):
    assert main(["adapt", "--task", "reach-v3", "--steps", "-5", "--out", str(tmp_path / "a")]) == 2
    assert "steps must be >= 0" in capsys.readouterr().err
    assert main(["adapt", "--task", "reach-v3", "--from", "/nonexistent", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "/nonexistent" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists(), "a failed start leaves no half-made run folder"
    assert main(["adapt", "--task", "reach-v3", "--demos", "1", "--episode-length", "2", "--out",
                 str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "demos need episodes of at least 3 steps" in err and len(err.strip().splitlines()) == 1
    for flag in (["--preset", "1m"], ["--seed-steps", "10"]):  # they would be ignored: a pretrained run has its own
        assert main(["adapt", "--task", "reach-v3", "--from", "runs/p", *flag, "--out", str(tmp_path / "d")]) == 2
        err = capsys.readouterr().err
        assert "--preset and --seed-steps are for --from scratch only" in err and len(err.strip().splitlines()) == 1
    assert main(["adapt", "--task", "MT10", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "'MT10' is a split of 10 tasks, not one task" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(CrossoverError, match="eval_episodes must be >= 1"):  # the library, not only the CLI
        AdaptConfig("reach-v3", eval_episodes=0)


def test_an_interrupted_run_says_how_to_resume(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_pretrain", interrupted)
    assert main(["pretrain", "--data", "d", "--out", "p"]) == 130
    assert "interrupted; rerun the same command with --resume to resume" in capsys.readouterr().err
    assert main(["pretrain", "--data", "d", "--out", "p", "--resume"]) == 130
    assert "interrupted; rerun the same command to resume" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["adapt", "--task", "reach-v3", "--out", "run", "--seed", "-1"],
    ["adapt", "--task", "reach-v3", "--out", "run", "--eval-episodes", "0"],
    ["pretrain", "--data", "data", "--out", "run", "--threads", "0"],
    ["evaluate", "run", "--task", "reach-v3", "--episode-length", "0"],
    ["evaluate", "run", "--task", "reach-v3", "--episodes", "two"],
])
def test_counts_below_their_floor_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and f"argument {argv[-2]}: " in err and err.strip().splitlines()[-1].endswith(
        ("is less than 0", "is less than 1", "'two' is not a whole number"))


def test_a_file_where_a_folder_is_meant_is_one_line(tmp_path, capsys):
    (tmp_path / "afile").write_text("")
    assert main(["collect", "--tasks", "reach-v3", "--episodes", "1", "--out", str(tmp_path / "afile")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "afile") in err


def test_pretrain_bad_inputs_are_one_line(tmp_path, capsys, small_dataset):
    assert main(["pretrain", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "p")]) == 2
    assert "meta/info.json" in capsys.readouterr().err
    assert main(["pretrain", "--data", str(small_dataset), "--tasks", "push-v3", "--out", str(tmp_path / "p")]) == 2
    assert "no episodes of push-v3" in capsys.readouterr().err
    assert main(["pretrain", "--data", str(small_dataset), "--bc-coef", "-1", "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--bc-coef must be >= 0 (got -1.0)" in err


def test_evaluate_measures_zero_shot_on_a_new_task_from_a_pretrain_run_only(pretrained, tmp_path, capsys):
    assert main(["evaluate", str(pretrained), "--task", "push-v3", "--episodes", "1", "--episode-length", "20",
                 "--prior-only"]) == 0
    out = capsys.readouterr().out
    assert "push-v3 is new to" in out and "mean of source tasks" in out and "over 1 episodes" in out
    main(["adapt", "--task", "reach-v3", "--steps", "0", "--eval-episodes", "1", "--episode-length", "20",
          "--out", str(tmp_path / "a")])
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "a"), "--task", "push-v3", "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not trained on 'push-v3'" in err and "crossover pretrain" in err


def test_evaluate_run_refuses_empty_evaluations():
    from crossover.eval.run import evaluate_run

    for episodes, length in ((0, 200), (1, 0)):  # the library, not only the CLI: "0 % success" would be no answer
        with pytest.raises(CrossoverError, match="at least 1"):
            evaluate_run("no-run", "reach-v3", episodes, episode_length=length)


def test_zero_shot_evaluation_plans_with_the_discount_adapt_starts_with(pretrained, tmp_path, monkeypatch):
    from crossover.agent.agent import discount_from_episode_length
    from crossover.eval import run as eval_run

    seen = []
    monkeypatch.setattr(eval_run, "evaluate", lambda agent, *args, **kwargs: seen.append(agent.discount))
    eval_run.evaluate_run(pretrained, "push-v3", 1, episode_length=20, progress=lambda _: None)
    agent, _ = new_agent(AdaptConfig("push-v3", init=str(pretrained), episode_length=20))
    assert seen == [agent.discount] == [discount_from_episode_length(20)]
    assert agent.discount != Agent.from_config(json.loads((pretrained / "checkpoint/config.json").read_text())).discount
