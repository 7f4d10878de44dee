"""The world model and the agent: shapes and action masks, learning on a fixed synthetic system, planner bounds,
exact save/load round-trips through safetensors, and seed determinism. Small networks keep the file under a few
seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from crossover.agent.agent import Agent, AgentConfig, discount_from_episode_length
from crossover.model.layers import MLP, EnsembleMLP, dropped_positions, init_parameters, mish, two_hot, two_hot_inv
from crossover.model.world_model import WorldModel, WorldModelConfig

OBS_DIM, ACTION_DIM = 10, 4
# Task 0 uses all four actuators; task 1 is a smaller robot whose last two action dims are padding.
ACTION_MASK = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]])


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks gain nothing from threads, and a second OpenMP thread on a busy 2-core machine can stall
    every op for milliseconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_model_cfg(**overrides) -> WorldModelConfig:
    sizes = dict(obs_dim=OBS_DIM, action_dim=ACTION_DIM, num_tasks=2, task_dim=8, latent_dim=32, enc_dim=32,
                 mlp_dim=64, num_q=3, num_bins=51)  # fmt: skip
    return WorldModelConfig(**{**sizes, **overrides})


def small_agent_cfg(**overrides) -> AgentConfig:
    planner = dict(iterations=2, num_samples=32, num_elites=8, num_pi_trajs=8, batch_size=32)
    return AgentConfig(**{**planner, **overrides})


def make_agent(seed: int = 0, **overrides) -> Agent:
    return Agent(small_model_cfg(), small_agent_cfg(**overrides), ACTION_MASK, seed=seed)


def random_batch(seed: int, horizon: int = 3, batch_size: int = 32) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    task = torch.randint(0, 2, (batch_size,), generator=gen)
    return {
        "obs": torch.randn(horizon + 1, batch_size, OBS_DIM, generator=gen),
        "action": (torch.rand(horizon, batch_size, ACTION_DIM, generator=gen) * 2 - 1) * ACTION_MASK[task],
        "reward": torch.rand(horizon, batch_size, generator=gen),
        "task": task,
        "terminated": torch.zeros(horizon, batch_size),
    }


def test_two_hot_round_trip_and_bounds():
    x = torch.tensor([-1e6, -3.2, -0.01, 0.0, 0.5, 7.0, 1234.0, 1e6])
    encoded = two_hot(x, num_bins=101)
    assert encoded.shape == (8, 101)
    torch.testing.assert_close(encoded.sum(-1), torch.ones(8))
    decoded = two_hot_inv(torch.log(encoded + 1e-30))
    # Inside the symlog range [-10, 10] the code is exact; outside it saturates at symexp(+-10).
    torch.testing.assert_close(decoded[1:-1], x[1:-1], rtol=1e-4, atol=1e-4)
    saturated = torch.expm1(torch.tensor(10.0))
    torch.testing.assert_close(decoded[[0, -1]], torch.stack([-saturated, saturated]))


def test_mish_matches_torch_in_value_and_gradient():
    x = torch.linspace(-30, 30, 2001, dtype=torch.float64).requires_grad_()
    ours = mish(x)
    (grad,) = torch.autograd.grad(ours.sum(), x)
    reference = F.mish(x)
    (reference_grad,) = torch.autograd.grad(reference.sum(), x)
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(grad, reference_grad, atol=1e-6, rtol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(mish(x), reference, atol=1e-6, rtol=1e-6)


def test_dropped_positions_are_a_bernoulli_process():
    gen = torch.Generator().manual_seed(0)
    positions = dropped_positions(100_000, 0.1, gen)
    assert positions.unique().numel() == positions.numel() and 0 <= positions.min() and positions.max() < 100_000
    assert abs(positions.numel() / 100_000 - 0.1) < 0.005
    # Every element is dropped with the same probability, first and last included.
    counts = torch.zeros(10)
    for _ in range(4000):
        p = dropped_positions(10, 0.3, gen)
        counts[p] += 1
    assert ((counts / 4000 - 0.3).abs() < 0.03).all(), counts


def test_shapes_and_action_masks():
    model = WorldModel(small_model_cfg(), ACTION_MASK, torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    obs = torch.randn(3, 5, OBS_DIM, generator=gen)
    task = torch.tensor([0, 1, 1, 0, 1])
    z = model.encode(obs, task)
    assert z.shape == (3, 5, 32)
    # SimNorm: every group of 8 latent units (units j, j+4, j+8, ...) is a distribution.
    groups = z.view(3, 5, 8, 4)
    torch.testing.assert_close(groups.sum(-2), torch.ones(3, 5, 4))
    assert (groups >= 0).all()
    policy = model.pi(z, task, gen)
    assert policy.action.shape == (3, 5, ACTION_DIM) and policy.log_prob.shape == (3, 5)
    padded = task == 1
    assert (policy.action[:, padded, 2:] == 0).all() and (policy.mean[:, padded, 2:] == 0).all()
    assert (policy.action[:, ~padded] != 0).all()
    assert model.next(z, policy.action, task).shape == (3, 5, 32)
    assert model.reward(z, policy.action, task).shape == (3, 5, 51)
    assert model.Q(z, policy.action, task, "all").shape == (3, 3, 5, 51)
    for kind in ("min", "avg"):
        assert model.Q(z, policy.action, task, kind, generator=gen).shape == (3, 5)
    with pytest.raises(ValueError, match="return_type"):
        model.Q(z, policy.action, task, "max")


def test_task_context_as_bias_equals_concatenated_input():
    """MLP and EnsembleMLP add the task embedding's share of the first layer as a bias; it must equal one Linear
    over [x, embedding], for one task shared by all rows and for a task per row."""
    gen = torch.Generator().manual_seed(0)
    net = MLP(6, [16], 5, context_dim=3)
    ensemble = EnsembleMLP(4, 6, [16], 5, context_dim=3)
    init_parameters(net, gen)
    init_parameters(ensemble, gen)
    x, context = torch.randn(2, 7, 6, generator=gen), torch.randn(7, 3, generator=gen)
    joined = torch.cat([x, context.expand(2, 7, 3)], dim=-1)
    first = net.linears[0]
    expected = net.linears[1](mish(net.norms[0](first(joined))))
    torch.testing.assert_close(net(x, context), expected)
    torch.testing.assert_close(net(x[:, :1], context[0]), expected[:, :1])
    w, b = ensemble.linears[0].weight, ensemble.linears[0].bias  # [4, 9, 16], [4, 1, 16]
    hidden = torch.einsum("abi,eio->eabo", joined, w) + b.unsqueeze(1)
    hidden = mish(ensemble.norms[0](hidden.reshape(4, 14, 16)))
    expected = ensemble.linears[1](hidden).view(4, 2, 7, 5)
    torch.testing.assert_close(ensemble(x, context), expected, rtol=1e-5, atol=1e-6)
    members = torch.tensor([3, 1])
    torch.testing.assert_close(ensemble(x, context, members=members), expected[members], rtol=1e-5, atol=1e-6)


def test_masked_dims_do_not_enter_log_prob():
    """A one-actuator task's log-prob equals that of the same Gaussian restricted to its active dim."""
    mask = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    model = WorldModel(small_model_cfg(num_tasks=1), mask, torch.Generator().manual_seed(0))
    z = model.encode(torch.randn(6, OBS_DIM), torch.tensor(0))
    policy = model.pi(z, torch.tensor(0), torch.Generator().manual_seed(3))
    mean, log_std = model._pi(z, model._task_context(torch.tensor(0))).chunk(2, dim=-1)
    cfg = model.cfg
    log_std = cfg.log_std_min + 0.5 * (cfg.log_std_max - cfg.log_std_min) * (torch.tanh(log_std[:, 0]) + 1)
    pre_tanh = torch.atanh(policy.action[:, 0].clamp(-0.999999, 0.999999))
    gaussian = torch.distributions.Normal(mean[:, 0], log_std.exp()).log_prob(pre_tanh)
    expected = gaussian - torch.log(1 - policy.action[:, 0] ** 2 + 1e-6)
    torch.testing.assert_close(policy.log_prob, expected, rtol=1e-3, atol=1e-3)


def test_act_pads_observations_and_masks_actions():
    short_obs = np.random.default_rng(0).standard_normal(7).astype(np.float32)
    padded_obs = np.concatenate([short_obs, np.zeros(OBS_DIM - 7, np.float32)])
    a, b = make_agent(seed=4), make_agent(seed=4)
    for t in range(5):
        for eval_mode in (False, True):
            action = a.act(short_obs, task=1, t0=t == 0, eval_mode=eval_mode)
            np.testing.assert_array_equal(action, b.act(padded_obs, task=1, t0=t == 0, eval_mode=eval_mode))
            assert action.shape == (ACTION_DIM,) and action.dtype == np.float32
            assert np.all(np.abs(action) <= 1.0) and np.all(action[2:] == 0.0)
    full = a.act(padded_obs, task=0, t0=True)
    assert np.all(np.abs(full) <= 1.0) and np.all(full != 0.0)
    # The policy prior alone: its mean in eval mode, masked like the planner's actions.
    prior = a.act(short_obs, task=1, eval_mode=True, prior_only=True)
    with torch.no_grad():
        task = torch.tensor(1)
        expected = a.model.pi(a.model.encode(torch.from_numpy(padded_obs)[None], task), task).mean[0].numpy()
    np.testing.assert_array_equal(prior, expected)
    assert np.all(prior[2:] == 0.0) and np.all(prior[:2] != 0.0)
    with pytest.raises(ValueError, match="obs_dim"):
        a.act(np.zeros(OBS_DIM + 1, np.float32), task=0)
    with pytest.raises(ValueError, match="task index"):
        a.act(padded_obs, task=2)


def test_planning_within_a_trust_region_stays_at_the_prior():
    # With trust_std the search starts from the prior's mean sequence and its std never exceeds trust_std: at a
    # vanishing width the planned action is the prior's mean action; the plain planner goes elsewhere.
    a = make_agent(seed=5)
    a.cfg.min_std = 1e-4
    obs = np.random.default_rng(1).standard_normal(OBS_DIM).astype(np.float32)
    a.trust_std = 1e-4
    for task in (0, 1):  # task 1 has padded action dims: exactly 0, as the prior's
        prior = a.act(obs, task=task, eval_mode=True, prior_only=True)
        for eval_mode in (True, False):
            near = a.act(obs, task=task, t0=True, eval_mode=eval_mode, generator=torch.Generator().manual_seed(0))
            np.testing.assert_allclose(near, prior, atol=2e-3)
            assert np.all(near[prior == 0.0] == 0.0)
    prior = a.act(obs, task=0, eval_mode=True, prior_only=True)
    a.trust_std = None
    free = a.act(obs, task=0, t0=True, eval_mode=True, generator=torch.Generator().manual_seed(0))
    assert np.abs(free - prior).max() > 0.05


def test_planner_variants_terminal_mean_and_fresh_pools():
    # terminal_action "mean" takes each sequence's terminal Q at the prior's mean action, so its values no longer
    # depend on the generator; keep_elites False refits to each iteration's fresh pool alone (TD-MPC2's way).
    from crossover.agent.planner import rollout_value

    a = make_agent(seed=6, iterations=3)
    with torch.no_grad():  # random weights throughout: the zero-initialised Q and reward heads would value all alike
        for p in a.model.parameters():
            p.normal_(0.0, 0.2)
    a.model.eval()  # as when acting: no dropout in the Q heads
    task, heads = torch.tensor(0), torch.tensor([0, 1])
    z = a.model.encode(torch.randn(8, OBS_DIM, generator=torch.Generator().manual_seed(2)), task)
    actions = torch.rand(a.cfg.horizon, 8, ACTION_DIM, generator=torch.Generator().manual_seed(3)) * 2 - 1

    def values(terminal_mean, seed):
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            return rollout_value(a.model, z, task, actions, 0, 0.9, gen, heads, terminal_mean=terminal_mean)[1]

    torch.testing.assert_close(values(True, 0), values(True, 1))
    assert not torch.allclose(values(False, 0), values(False, 1))
    obs = np.random.default_rng(4).standard_normal(OBS_DIM).astype(np.float32)

    def planned(**choices):
        for k, v in choices.items():
            setattr(a.cfg, k, v)
        return a.act(obs, task=0, t0=True, eval_mode=True, generator=torch.Generator().manual_seed(0))

    default = planned(terminal_action="sample", keep_elites=True)
    np.testing.assert_array_equal(planned(terminal_action="sample", keep_elites=True), default)
    assert not np.array_equal(planned(terminal_action="sample", keep_elites=False), default)
    assert not np.array_equal(planned(terminal_action="mean", keep_elites=True), default)
    with pytest.raises(ValueError, match="terminal_action"):
        AgentConfig(terminal_action="median")


def synthetic_dataset(num_episodes: int = 64, length: int = 12, seed: int = 0) -> dict[str, torch.Tensor]:
    """Episodes (initial states and actions drawn from `seed`) of one fixed linear system with a bounded
    reward: something a world model can learn."""
    system = torch.Generator().manual_seed(1234)
    a_matrix = torch.linalg.qr(torch.randn(OBS_DIM, OBS_DIM, generator=system))[0] * 0.9
    b_matrix = torch.randn(ACTION_DIM, OBS_DIM, generator=system) * 0.5
    gen = torch.Generator().manual_seed(seed)
    obs = torch.empty(length + 1, num_episodes, OBS_DIM)
    obs[0] = torch.randn(num_episodes, OBS_DIM, generator=gen)
    action = torch.rand(length, num_episodes, ACTION_DIM, generator=gen) * 2 - 1
    for t in range(length):
        obs[t + 1] = obs[t] @ a_matrix + action[t] @ b_matrix
    reward = 2.0 * torch.tanh(obs[1:, :, 0])
    return {"obs": obs, "action": action, "reward": reward}


def sample(data: dict[str, torch.Tensor], gen: torch.Generator, horizon: int = 3, batch_size: int = 32):
    length, num_episodes = data["action"].shape[:2]
    episode = torch.randint(0, num_episodes, (batch_size,), generator=gen)
    start = torch.randint(0, length - horizon + 1, (batch_size,), generator=gen)
    steps = start + torch.arange(horizon + 1).unsqueeze(1)  # [H+1, B]
    return {
        "obs": data["obs"][steps, episode],
        "action": data["action"][steps[:-1], episode],
        "reward": data["reward"][steps[:-1], episode],
        "task": torch.zeros(batch_size, dtype=torch.long),
        "terminated": torch.zeros(horizon, batch_size),
    }


def reward_error(agent: Agent, batch: dict[str, torch.Tensor]) -> float:
    with torch.no_grad():
        z = agent.model.encode(batch["obs"][0], batch["task"])
        predicted = two_hot_inv(agent.model.reward(z, batch["action"][0], batch["task"]))
    return (predicted - batch["reward"][0]).abs().mean().item()


def test_training_fits_a_synthetic_system():
    agent = make_agent(seed=0, lr=1e-3)
    data = synthetic_dataset()
    gen = torch.Generator().manual_seed(0)
    held_out = sample(synthetic_dataset(seed=1), torch.Generator().manual_seed(1), batch_size=256)
    error_before = reward_error(agent, held_out)
    history = [agent.update(sample(data, gen)) for _ in range(300)]
    error_after = reward_error(agent, held_out)
    first = np.mean([h["model_loss"] for h in history[:20]])
    last = np.mean([h["model_loss"] for h in history[-20:]])
    assert all(np.isfinite(v) for h in history for v in h.values())
    assert last < 0.5 * first, (first, last)
    # Zero-initialised reward heads start at the mean |reward|; a fitted model must do much better on new data.
    assert error_after < 0.4 * error_before, (error_before, error_after)


def test_behaviour_cloning_pulls_the_policy_prior_to_the_logged_actions():
    """With bc_coef, the policy mean learns the data's own obs -> action rule (as TD3+BC); the pure max-Q prior of
    TD-MPC2 has no reason to, since the rewards here do not depend on the action."""
    gen = torch.Generator().manual_seed(0)
    weights = torch.randn(OBS_DIM, ACTION_DIM, generator=gen)

    def batch(seed: int) -> dict[str, torch.Tensor]:
        b = random_batch(seed)
        b["task"] = torch.zeros_like(b["task"])  # all four action dims real
        b["action"] = torch.tanh(b["obs"][:-1] @ weights)
        return b

    def cloning_error(agent: Agent) -> float:
        held_out = batch(999)
        with torch.no_grad():
            z = agent.model.encode(held_out["obs"][0], held_out["task"])
            mean = agent.model.pi(z, held_out["task"]).mean
        return (mean - held_out["action"][0]).square().mean().item()

    errors = {}
    for coef in (0.0, 5.0):
        agent = make_agent(seed=0, lr=1e-3, bc_coef=coef)
        history = [agent.update(batch(i)) for i in range(200)]
        errors[coef] = cloning_error(agent)
        assert (history[-1]["bc_loss"] > 0) == (coef > 0)
    assert errors[5.0] < 0.3 * errors[0.0], errors


def test_a_zero_q_weight_leaves_the_policy_prior_to_cloning_alone():
    # q_weight scales the prior's max-Q and entropy terms: at 0 and without cloning, a fresh agent's prior does not
    # move while its model does; with a cloning weight, only cloning moves it.
    a, b = make_agent(seed=6), make_agent(seed=6)
    batch = random_batch(0)
    before = [p.clone() for p in a.model.policy_parameters]
    model_before = [p.clone() for p in a.model.model_parameters]
    a.update({**batch, "q_weight": torch.tensor(0.0)})
    assert all(torch.equal(p, q) for p, q in zip(a.model.policy_parameters, before))
    assert not all(torch.equal(p, q) for p, q in zip(a.model.model_parameters, model_before))
    b.update({**batch, "q_weight": torch.tensor(0.0), "bc_weight": torch.ones(32)})
    assert not all(torch.equal(p, q) for p, q in zip(b.model.policy_parameters, before))
    c = make_agent(seed=6)
    c.update({**batch, "bc_weight": torch.ones(32)})  # q_weight 1: Q moves it too, elsewhere
    assert not all(torch.equal(p, q) for p, q in zip(b.model.policy_parameters, c.model.policy_parameters))


def test_tensors_round_trip_through_safetensors_gives_identical_behaviour():
    agent = make_agent(seed=1)
    for i in range(3):
        agent.update(random_batch(i))
    agent.act(np.ones(OBS_DIM, np.float32), task=0, t0=True)
    blob = save_safetensors(agent.tensors())  # raises on non-contiguous or shared tensors
    config = json.loads(json.dumps(agent.config()))
    restored = Agent.from_config(config, load_safetensors(blob))

    obs = np.linspace(-1, 1, OBS_DIM).astype(np.float32)
    np.testing.assert_array_equal(agent.act(obs, task=0), restored.act(obs, task=0))  # warm start restored too
    batch = random_batch(10)
    assert agent.update(batch) == restored.update(batch)
    for (name, p), (_, q) in zip(agent.model.state_dict().items(), restored.model.state_dict().items()):
        assert torch.equal(p, q), name


def test_same_seed_same_updates_and_different_seed_differs():
    a, b, c = make_agent(seed=7), make_agent(seed=7), make_agent(seed=8)
    for i in range(3):
        batch = random_batch(i)
        metrics_a, metrics_b, metrics_c = a.update(batch), b.update(batch), c.update(batch)
        assert metrics_a == metrics_b
    assert metrics_a != metrics_c
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)


def test_add_task_copies_the_source_embedding_and_keeps_training():
    agent = make_agent(seed=2)
    agent.update(random_batch(0))
    new = agent.add_task(torch.tensor([1.0, 1.0, 1.0, 0.0]), init_from=1)
    assert new == 2 and agent.model_cfg.num_tasks == 2 + 1
    weight = agent.model._task_emb.weight
    assert torch.equal(weight[2], weight[1])
    before = weight.detach().clone()
    batch = random_batch(1)
    batch["task"][:] = 2
    batch["action"][..., 3] = 0
    metrics = agent.update(batch)
    assert np.isfinite(metrics["model_loss"])
    after = agent.model._task_emb.weight.detach()
    assert not torch.equal(after[2], before[2])
    # The table started Adam afresh: rows of tasks absent from the batch do not drift on old momentum.
    assert torch.equal(after[:2], before[:2])
    assert agent.act(np.zeros(OBS_DIM, np.float32), task=2, t0=True)[3] == 0.0


def test_terminated_transitions_have_no_bootstrap_and_single_task_agents_work():
    agent = Agent(small_model_cfg(num_tasks=1, task_dim=0), small_agent_cfg(), seed=3)
    for i in range(3):  # move the Q heads off their zero initialisation
        agent.update({**random_batch(i), "task": torch.zeros(32, dtype=torch.long)})
    batch = {**random_batch(5), "task": torch.zeros(32, dtype=torch.long), "terminated": torch.ones(3, 32)}
    metrics = agent.update(batch)
    assert metrics["td_target_mean"] == pytest.approx(batch["reward"].mean().item(), rel=1e-5)
    assert agent.act(np.zeros(OBS_DIM, np.float32), task=0, t0=True).shape == (ACTION_DIM,)


def test_bad_batch_names_the_field():
    agent = make_agent()
    batch = random_batch(0)
    batch["reward"] = batch["reward"][:2]
    with pytest.raises(ValueError, match="reward"):
        agent.update(batch)


def test_discount_and_presets():
    assert discount_from_episode_length(500) == pytest.approx(0.99)
    assert discount_from_episode_length(10) == 0.95
    cfg = WorldModelConfig.preset("1m", obs_dim=39, action_dim=4)
    assert (cfg.enc_dim, cfg.mlp_dim, cfg.latent_dim, cfg.num_q, cfg.num_bins) == (256, 384, 128, 2, 101)
    assert WorldModelConfig.preset("5m", obs_dim=39, action_dim=4, num_q=2).num_q == 2
    with pytest.raises(ValueError, match="preset"):
        WorldModelConfig.preset("7m", obs_dim=39, action_dim=4)
    with pytest.raises(ValueError, match="simnorm_dim"):
        small_model_cfg(latent_dim=30)
