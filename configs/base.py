"""Official TD-MPC2 defaults (names as in the official config.yaml) plus this project's run keys."""
from ml_collections import config_dict


def get_config() -> config_dict.ConfigDict:
    c = config_dict.ConfigDict()
    # environment
    c.task = "dog-run"
    c.backend = "dmc"  # "dmc": host MuJoCo (configs/dmc.py); "mjx": batched MJX (configs/mjx.py)
    c.obs = "state"
    c.episodic = False
    c.episode_length = 500  # agent steps (1000 physics steps at action repeat 2)
    c.seed_steps = config_dict.placeholder(int)  # default max(1000, 5 * episode_length)
    # evaluation
    c.eval_episodes = 10
    c.eval_freq = 50_000  # agent steps
    # training
    c.steps = 10_000_000  # agent steps
    c.batch_size = 256
    c.reward_coef = 0.1
    c.value_coef = 0.1
    c.termination_coef = 1.0
    c.consistency_coef = 20.0
    c.rho = 0.5
    c.lr = 3e-4
    c.enc_lr_scale = 0.3
    c.grad_clip_norm = 20.0
    c.tau = 0.01
    c.discount_denom = 5.0
    c.discount_min = 0.95
    c.discount_max = 0.995
    c.buffer_size = 1_000_000
    c.exp_name = "default"
    # planning
    c.mpc = True
    c.iterations = 6
    c.num_samples = 512
    c.num_elites = 64
    c.num_pi_trajs = 24
    c.horizon = 3
    c.min_std = 0.05
    c.max_std = 2.0
    c.temperature = 0.5
    # actor
    c.log_std_min = -10.0
    c.log_std_max = 2.0
    c.entropy_coef = 1e-4
    # critic
    c.num_bins = 101
    c.vmin = -10.0
    c.vmax = 10.0
    # architecture: model_size fills the size keys left unset; a size key set explicitly wins
    c.model_size = 5
    c.num_enc_layers = config_dict.placeholder(int)
    c.enc_dim = config_dict.placeholder(int)
    c.mlp_dim = config_dict.placeholder(int)
    c.latent_dim = config_dict.placeholder(int)
    c.num_q = config_dict.placeholder(int)
    c.dropout = 0.01
    c.simnorm_dim = 8
    # misc
    c.seed = 1
    c.save_csv = True
    c.save_video = False
    c.save_agent = True
    # this project's run keys
    c.work_dir = config_dict.placeholder(str)  # default: runs/<task>/<seed>/<exp_name>
    c.checkpoint_every = 50_000  # agent steps; checkpoints land on the next episode boundary
    c.resume = False
    c.save_buffer = True  # include the replay buffer in checkpoints (needed for exact resume)
    c.tensorboard = True
    c.progress = True
    # compiled XLA programs kept on disk, so a run that compiles what an earlier run compiled (same
    # model, shapes, jax version) loads it instead: "" turns this off
    c.compilation_cache = "~/.cache/tdmpc2_jax/xla"
    return c
