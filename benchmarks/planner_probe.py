"""Does planning add anything to the policy prior it starts from? A probe of an adaptation run's world model.

MPPI planning (crossover/agent/planner.py) scores action sequences with the model's rewards and terminal value;
it can only beat the policy prior if those scores tell good actions from bad. This probe evaluates one run's
final agent on the same evaluation episodes: the policy prior's mean action alone, our planner (48 samples x 3
iterations), with --td-mpc2 a planner of TD-MPC2's size (512 x 6, 64 elites; ~12x slower), our planner kept
within trust regions of several widths around the prior (what demos runs do early on), and three ways of
acting near the prior (NearPrior): its mean plus noise, and the best-valued or a random one of 48 noisy copies
of the prior's mean sequence rolled out in the model. It also measures how much the model's value of a 3-step
sequence depends on the actions: along a rollout of the prior, every 20 steps, the values of prior sequences
against Gaussian ones (std 2, as the planner's first iteration draws them). A spread of a few percent means the planner is picking by noise.

Found with it (2026-11-27, session 11): on bin-picking-v3 after pretraining on ML45-train and 2,000 updates on 5
demonstrations, the prior alone succeeded 10/10 and both planners 0/10. Session 12, same run: among the same 48
noisy copies of the prior's sequence, the best-valued one gave 0/10 (return 16) and a random one 7/10 (return
638): the model's value does not just fail to help, it picks the wrong actions. Session 13, after 5,000 online
steps with demos runs' trust region (planner_probe_trust20k_q.json): still so (best 1/10, random 5/10), and
planning near the prior gives 9/10 at std 0.05, 4/10 at 0.2, 0/10 at 0.5. Session 14, --prior-only on 20
layouts: seed 1's mean prior after 1,000 steps won 1/20 on its own training layouts and 13/20 with noise of std
0.3, which is why its noisy training episodes kept winning while its evaluations failed. Session 17, --variants
on 20 episodes after 20,000 env steps: door-unlock-v3 pretrained (prior 55%, ours 70%, terminal Q at the prior's
mean 65%, no elites kept 60%, both 60%) and door-lock-v3 scratch (45%, 35%, 30%, 45%, 35%): neither choice moves
success beyond the noise of 20 episodes (a standard error of ~11 points).

Usage (from the repository root): python benchmarks/planner_probe.py RUN [--task T] [--episodes N] [--td-mpc2]
    [--layouts eval|train] [--prior-only | --variants]
Writes benchmarks/results/planner_probe_<run folder name>[_train][_prior|_variants].json.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import arg_parser, write_result, read_json, run_benchmark  # noqa: E402

from crossover.agent.planner import prior_mean_sequence, rollout_value  # noqa: E402
from crossover.errors import CrossoverError  # noqa: E402
from crossover.eval.rollout import EVAL_SEED_BASE, evaluate  # noqa: E402
from crossover.tasks import get_task, make_env  # noqa: E402
from crossover.train.checkpoint import load_checkpoint  # noqa: E402
from crossover.train.online import episode_seed  # noqa: E402

TD_MPC2 = {"num_samples": 512, "iterations": 6, "num_elites": 64}  # Hansen et al. 2024, their default planner
NEAR_STD, NEAR_SAMPLES = 0.3, 48  # how far from the prior NearPrior acts; how many sequences it picks from
TRUST_STDS = (0.05, 0.2, 0.5)  # widths of the planner's trust region around the prior (planner.plan's trust_std)
VARIANTS = {  # our planner with the alternatives to two of its choices (AgentConfig.terminal_action, keep_elites)
    "planner, terminal Q at the prior's mean": {"terminal_action": "mean"},
    "planner, no elites kept": {"keep_elites": False},
    "planner, both": {"terminal_action": "mean", "keep_elites": False},
}


class NearPrior:
    """Acts near the policy prior's mean action, to tell whether the model's value helps or harms there.

    With pick None: the prior's mean plus Gaussian noise of std `std` (does the task tolerate that much noise?).
    With pick "value" or "random": `samples` action sequences, the prior's mean sequence (rolled out in the model)
    plus noise of std `std`, of which the one the model values most, or one drawn at random, gives the action.
    If random picks succeed where value picks fail, the value prefers the wrong actions, not just noisy ones.
    """

    def __init__(self, agent, std: float, pick: str | None = None, samples: int = 48):
        self.agent, self.std, self.pick, self.samples = agent, std, pick, samples

    def act(self, obs, task_index: int, t0: bool = False, eval_mode: bool = True,
            generator: torch.Generator | None = None, prior_only: bool = False):
        agent, model, task = self.agent, self.agent.model, torch.tensor(task_index)
        obs = torch.nn.functional.pad(torch.as_tensor(obs, dtype=torch.float32), (0, model.cfg.obs_dim - len(obs)))
        with torch.inference_mode():
            z = model.encode(obs[None], task)
            mask = model.action_mask[task]
            if self.pick is None:
                mean = model.pi_mean(z, task)[0]
                return ((mean + self.std * torch.randn(mean.shape, generator=generator)).clamp(-1, 1) * mask).numpy()
            prior = prior_mean_sequence(model, z, task, agent.cfg.horizon)
            noise = torch.randn(agent.cfg.horizon, self.samples, model.cfg.action_dim, generator=generator)
            actions = (prior[:, None] + self.std * noise).clamp(-1, 1) * mask
            heads = torch.randperm(model.cfg.num_q, generator=generator)[:2]
            _, value = rollout_value(model, z.expand(self.samples, -1), task, actions, 0, agent.discount, generator,
                                     heads)
            best = value.argmax() if self.pick == "value" else torch.randint(self.samples, (), generator=generator)
            return actions[0, best].numpy().copy()


def value_spread(agent, spec, task_index: int, episode_length: int, every: int = 20, samples: int = 96) -> list[dict]:
    """Along one rollout of the prior's mean action: the model's mean value of prior and of Gaussian sequences."""
    model, task = agent.model, torch.tensor(task_index)
    generator = torch.Generator().manual_seed(0)
    heads = torch.arange(min(2, model.cfg.num_q))
    rows = []
    env = make_env(spec, episode_length)
    try:
        obs = env.reset(EVAL_SEED_BASE)
        for t in range(episode_length):
            if t % every == 0:
                with torch.inference_mode():
                    z = model.encode(torch.as_tensor(obs, dtype=torch.float32)[None], task)
                    rows_z = z.expand(agent.cfg.num_pi_trajs + samples, -1)
                    gaussian = (agent.cfg.max_std * torch.randn(agent.cfg.horizon, samples, model.cfg.action_dim,
                                                                generator=generator)).clamp(-1, 1)
                    _, v = rollout_value(model, rows_z, task, gaussian * model.action_mask[task],
                                         agent.cfg.num_pi_trajs, agent.discount, generator, heads)
                prior, other = v[:agent.cfg.num_pi_trajs], v[agent.cfg.num_pi_trajs:]
                rows.append({"step": t, "prior_mean": round(prior.mean().item(), 2),
                             "gaussian_mean": round(other.mean().item(), 2),
                             "best_is_prior": bool(v.argmax().item() < agent.cfg.num_pi_trajs)})
            obs, _, terminated, truncated, _ = env.step(agent.act(obs, task_index, eval_mode=True, prior_only=True))
            if terminated or truncated:
                break
    finally:
        env.close()
    return rows


def main() -> None:
    p = arg_parser(__doc__)
    p.add_argument("run", help="a `crossover adapt` run folder")
    p.add_argument("--task", default=None, help="default: the run's own task")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes per way of acting")
    p.add_argument("--td-mpc2", action="store_true", help="also plan with TD-MPC2's sample budget (slow)")
    p.add_argument("--layouts", choices=("eval", "train"), default="eval",
                   help="the run's evaluation layouts, or those of its first training episodes (default: eval)")
    p.add_argument("--prior-only", action="store_true",
                   help="only the prior alone and the prior plus noise (fast: no planning)")
    p.add_argument("--variants", action="store_true",
                   help="only the prior alone, our planner, and our planner with the terminal Q taken at the "
                   "prior's mean action and/or no elites kept across iterations")
    args = p.parse_args()
    try:
        run = Path(args.run)
        config = run / "adapt_config.json"
        if not config.exists():
            raise CrossoverError(f"{run}: not a `crossover adapt` run (no adapt_config.json)")
        saved = read_json(config, task=str, episode_length=int, seed=int, threads=int)
        task = args.task or saved["task"]
        if args.prior_only and args.variants:
            raise CrossoverError("--prior-only and --variants each choose the ways of acting: give one")
        if args.episodes < 1:
            raise CrossoverError(f"--episodes must be at least 1 (got {args.episodes})")
        torch.set_num_threads(saved["threads"])
        agent, state, _ = load_checkpoint(run / "checkpoint")
        if task not in state["tasks"]:
            raise CrossoverError(f"{run}: the agent was not trained on {task!r}")
        spec, index, length = get_task(task), state["tasks"].index(task), saved["episode_length"]
        seeds = [episode_seed(saved["seed"], i) for i in range(args.episodes)] if args.layouts == "train" else None
        ways = [("prior alone", None), (f"prior + noise {NEAR_STD}", NearPrior(agent, NEAR_STD))]
        if args.variants:
            ways = [("prior alone", None), ("planner, ours", {})] + list(VARIANTS.items())
        elif not args.prior_only:
            ways += [("planner, ours", {})] + ([("planner, TD-MPC2 size", TD_MPC2)] if args.td_mpc2 else [])
            ways += [(f"planner near the prior, std {w}", {"trust_std": w}) for w in TRUST_STDS]
            ways += [(f"near prior, best value of {NEAR_SAMPLES}", NearPrior(agent, NEAR_STD, "value", NEAR_SAMPLES)),
                     (f"near prior, random of {NEAR_SAMPLES}", NearPrior(agent, NEAR_STD, "random", NEAR_SAMPLES))]
        changed = {k for settings in (TD_MPC2, *VARIANTS.values()) for k in settings}  # what the ways set
        ours = {k: getattr(agent.cfg, k) for k in changed}
        results = []
        for name, how in ways:
            settings = dict(how) if isinstance(how, dict) else {}
            agent.trust_std = settings.pop("trust_std", None)
            for k, v in {**ours, **settings}.items():
                setattr(agent.cfg, k, v)
            t0 = time.time()
            actor = how if isinstance(how, NearPrior) else agent
            ev = evaluate(actor, spec, index, args.episodes, length, prior_only=how is None, seeds=seeds)
            results.append({"acting": name, "success": ev.success_rate, "return": round(ev.mean_return, 1),
                            "seconds": round(time.time() - t0, 1)})
            print(f"{name:40s} success {ev.success_rate:4.0%}  return {ev.mean_return:8.1f}  ({time.time() - t0:.0f}s)",
                  flush=True)
        for k, v in ours.items():
            setattr(agent.cfg, k, v)
        agent.trust_std = None
        spread = value_spread(agent, spec, index, length)
        print("\nstep  value of prior sequences  of Gaussian ones  best is a prior sequence")
        for r in spread:
            print(f"{r['step']:4d}  {r['prior_mean']:24.1f}  {r['gaussian_mean']:16.1f}  {r['best_is_prior']}")
        name = f"planner_probe_{run.name}" + ("_train" if args.layouts == "train" else "") + \
            ("_prior" if args.prior_only else "") + ("_variants" if args.variants else "")
        out = write_result(name, {"run": str(run), "task": task, "env_steps": state["env_steps"],
                                  "episodes": args.episodes, "layouts": args.layouts, "acting": results,
                                  "value_spread": spread})
        print(f"\nwrote {out}")
    except CrossoverError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    run_benchmark(main)
