"""factory.models.LanguageModel: it learns, perplexity, groups, schedule, generation, checkpoints."""
import math

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from factory.data.text.tokenizer import EOS, train_bpe
from factory.errors import ConfigError
from factory.models import LanguageModel, load_model
from factory.models.language import WarmupCosine

TEXT = "the quick brown fox jumps over the lazy dog. " * 60
BLOCK = 16


@pytest.fixture(scope="module")
def tokenizer():
    return train_bpe([TEXT], 280)


class Windows(pl.LightningDataModule):
    """Consecutive windows of one repeated text, as ``TextDataModule`` batches them: (x, y = x shifted)."""

    def __init__(self, tokenizer) -> None:
        super().__init__()
        ids = torch.tensor(tokenizer.encode(TEXT).ids)
        n = (len(ids) - 1) // BLOCK
        self.x = ids[: n * BLOCK].view(n, BLOCK)
        self.y = ids[1: n * BLOCK + 1].view(n, BLOCK)
        self.tokenizer_json = tokenizer.to_str()

    def _loader(self, shuffle: bool = False) -> DataLoader:
        return DataLoader(TensorDataset(self.x, self.y), batch_size=8, shuffle=shuffle)

    def train_dataloader(self):
        return self._loader(shuffle=True)

    def val_dataloader(self):
        return self._loader()

    def test_dataloader(self):
        return self._loader()


def spec(tokenizer) -> dict:
    return {"task": "language_modeling", "vocab_size": tokenizer.get_vocab_size(), "block_size": BLOCK,
            "eos_id": tokenizer.token_to_id(EOS), "tokenizer_hash": "test"}


def make(tokenizer, positions="learned", schedule=None, **optimizer) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(
        net={"_target_": "factory.models.GPT", "n_layer": 2, "n_head": 2, "n_embd": 32, "positions": positions},
        optimizer={"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 3e-3, **optimizer},
        schedule=schedule, spec=spec(tokenizer))


def trainer(tmp_path, steps: int = 1, validate: bool = False) -> pl.Trainer:
    """A CPU Trainer; one that fits skips validation (each test measures what it needs)."""
    return pl.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
                      log_every_n_steps=1, num_sanity_val_steps=0, limit_val_batches=None if validate else 0)


@pytest.fixture(scope="module")
def trained(tokenizer, tmp_path_factory):
    """A model fitted 60 steps on the repeated text, and its fitted Trainer."""
    model = make(tokenizer, schedule={"warmup_steps": 5, "min_lr_ratio": 0.1})
    fit = trainer(tmp_path_factory.mktemp("fit"), 60)
    fit.fit(model, datamodule=Windows(tokenizer))
    return model, fit


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_loss_falls_on_a_repeated_text(tokenizer, tmp_path, positions):
    model, data = make(tokenizer, positions=positions), Windows(tokenizer)
    before = trainer(tmp_path, validate=True).validate(model, datamodule=data, verbose=False)[0]["val/loss"]
    trainer(tmp_path, 30).fit(model, datamodule=data)
    after = trainer(tmp_path, validate=True).validate(model, datamodule=data, verbose=False)[0]["val/loss"]
    assert before > math.log(tokenizer.get_vocab_size()) - 0.5  # untrained: about uniform
    assert after < before / 2


def test_perplexity_is_exp_of_the_mean_token_loss(trained, tokenizer, tmp_path):
    model, _ = trained
    data = Windows(tokenizer)
    metrics = trainer(tmp_path).test(model, datamodule=data, verbose=False)[0]
    assert metrics["test/perplexity"] == pytest.approx(math.exp(metrics["test/loss"]), rel=1e-5)
    model.eval()
    with torch.no_grad():  # every token of the split weighs the same
        logits = model(data.x)
        expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), data.y.flatten()).item()
    assert metrics["test/loss"] == pytest.approx(expected, rel=1e-4)


def test_training_logs_throughput_and_epoch_loss(trained):
    _, fit = trained
    metrics = fit.callback_metrics
    assert metrics["train/tokens_per_s"] > 0
    assert "train/loss_epoch" in metrics and "train/mfu" not in metrics  # MFU on CUDA only


def test_the_tokenizer_comes_from_the_datamodule(trained, tokenizer):
    model, _ = trained
    assert model.tokenizer_json == tokenizer.to_str()


def test_seeded_generation_repeats_and_seeds_differ(trained):
    model, _ = trained
    first = model.generate_text("the quick", max_new_tokens=20, seed=1)
    assert first == model.generate_text("the quick", max_new_tokens=20, seed=1)
    others = {model.generate_text("the quick", max_new_tokens=20, seed=seed, temperature=2.0) for seed in range(2, 6)}
    assert len(others) > 1
    assert "".join(model.stream_text("the quick", max_new_tokens=20, seed=1)) == first
    model.train()
    model.generate_text("the", max_new_tokens=2)  # sampled in eval mode (no dropout), then restored
    assert model.training


def test_greedy_generation_continues_the_learned_text(trained):
    model, _ = trained
    assert model.generate_text("the quick brown", max_new_tokens=6, temperature=0).startswith(" fox jumps")


def test_generate_crops_to_block_size_and_keeps_top_k(trained):
    model, _ = trained
    ids = torch.randint(0, model.spec["vocab_size"], (2, BLOCK + 5))  # longer than the context
    out = model.generate(ids, max_new_tokens=3, top_k=1, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, BLOCK + 8) and torch.equal(out[:, : BLOCK + 5], ids)
    greedy = model.generate(ids, max_new_tokens=3, temperature=0)
    assert torch.equal(out, greedy)  # top_k=1 is greedy


def test_checkpoint_round_trip_generates_the_same_text(trained, tmp_path):
    model, fit = trained
    path = tmp_path / "model.ckpt"
    fit.save_checkpoint(path)
    loaded = load_model(path)
    assert isinstance(loaded, LanguageModel) and not loaded.training
    assert loaded.tokenizer_json == model.tokenizer_json  # the checkpoint alone can generate
    assert loaded.generate_text("the lazy", 16, seed=7) == model.generate_text("the lazy", 16, seed=7)


def test_weight_decay_only_on_linear_weights(tokenizer):
    model = make(tokenizer)
    decay, rest = model.parameter_groups()
    net = model.net
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    assert all(p.dim() == 2 for p in decay["params"])
    assert any(p is net.wte.weight for p in rest["params"])  # the tied embedding/head: not decayed
    assert any(p is net.blocks[0].attn.c_attn.weight for p in decay["params"])
    everything = {id(p) for p in net.parameters()}
    listed = [id(p) for group in (decay, rest) for p in group["params"]]
    assert sorted(listed) == sorted(everything)  # each parameter in exactly one group


def test_warmup_then_cosine_to_the_floor():
    schedule = WarmupCosine(total_steps=110, warmup_steps=10, min_lr_ratio=0.1)
    assert schedule(0) == pytest.approx(1 / 11)
    assert schedule(9) == pytest.approx(10 / 11)
    assert schedule(10) == pytest.approx(1.0)
    assert schedule(60) == pytest.approx(0.55)  # halfway down the cosine
    assert schedule(110) == pytest.approx(0.1) and schedule(500) == pytest.approx(0.1)


def test_schedule_steps_per_optimizer_step(tokenizer, tmp_path):
    model = make(tokenizer, schedule={"warmup_steps": 4, "min_lr_ratio": 0.0})
    trainer(tmp_path, 8).fit(model, datamodule=Windows(tokenizer))
    lr = model.trainer.optimizers[0].param_groups[0]["lr"]
    assert lr == pytest.approx(3e-3 * WarmupCosine(8, 4, 0.0)(8))  # the last step: the floor


def test_a_bad_optimizer_key_is_named(tokenizer, tmp_path):
    model = make(tokenizer, momentum=0.9)
    with pytest.raises(ConfigError, match="model.optimizer"):
        trainer(tmp_path).fit(model, datamodule=Windows(tokenizer))


def test_a_bad_size_is_refused_at_construction(tokenizer):
    with pytest.raises(ConfigError, match="model.net.n_embd"):
        LanguageModel(net={"_target_": "factory.models.GPT", "n_head": 3, "n_embd": 32},
                      optimizer={"_target_": "torch.optim.AdamW", "_partial_": True}, spec=spec(tokenizer))


def test_without_a_tokenizer_generation_says_why(tokenizer):
    with pytest.raises(ConfigError, match="no tokenizer"):
        make(tokenizer).generate_text("the")
