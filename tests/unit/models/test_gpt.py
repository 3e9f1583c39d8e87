"""factory.models.GPT: causality, tied weights, sizes against the formula, init, checkpointing."""
import math

import pytest
import torch

from factory.errors import ConfigError
from factory.models.gpt import GPT, INIT_STD, gpt_parameters

SPEC = {"task": "language_modeling", "vocab_size": 97, "block_size": 16, "eos_id": 0, "tokenizer_hash": "x"}


def tiny(**kwargs) -> GPT:
    torch.manual_seed(0)
    return GPT(SPEC, **{"n_layer": 2, "n_head": 2, "n_embd": 16, **kwargs}).eval()


@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_future_tokens_do_not_change_past_logits(positions):
    model = tiny(positions=positions)
    x = torch.randint(0, 97, (2, 12))
    changed = x.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 97
    a, b = model(x), model(changed)
    assert a.shape == (2, 12, 97)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert (a[:, 7:] - b[:, 7:]).abs().max() > 1e-3  # and the later ones do see them


def test_rotary_positions_matter():
    """One layer without positions would give the last token the same logits for [a, b, c] and
    [b, a, c] (it attends to the same set); rotary positions tell the orders apart."""
    model = tiny(positions="rotary", n_layer=1)
    with torch.no_grad():  # sharp attention: at GPT-2's init scale the scores are all ~0
        model.blocks[0].attn.c_attn.weight.mul_(50)
    a, b = model(torch.tensor([[3, 4, 5], [4, 3, 5]]))[:, -1]
    assert (a - b).abs().max() > 1e-2


def test_head_is_tied_to_the_token_embedding():
    model = tiny()
    assert model.lm_head.weight is model.wte.weight
    assert sum(p is model.wte.weight for p in model.parameters()) == 1  # counted and optimized once
    state = model.state_dict()
    assert state["lm_head.weight"].data_ptr() == state["wte.weight"].data_ptr()


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("positions", ["learned", "rotary"])
def test_parameter_count_matches_the_formula(bias, positions):
    model = GPT(SPEC, n_layer=3, n_head=4, n_embd=32, bias=bias, positions=positions)
    expected = gpt_parameters(97, 16, 3, 32, bias=bias, positions=positions)
    assert model.num_parameters() == expected == sum(p.numel() for p in model.parameters())


def test_gpt2_124m_has_its_known_size_and_flops():
    """GPT-2 small with biases and vocabulary 50304: nanoGPT reports 123.69M without the position
    table (786,432), 124.48M in all."""
    spec = {**SPEC, "vocab_size": 50304, "block_size": 1024}
    with torch.device("meta"):
        model = GPT(spec, n_layer=12, n_head=12, n_embd=768, bias=True)
    assert model.num_parameters() == 124_475_904 == gpt_parameters(50304, 1024, 12, 768, bias=True)
    assert model.num_parameters(non_embedding=True) == 124_475_904 - 1024 * 768
    n = model.num_parameters(non_embedding=True)
    assert model.flops_per_token() == 6 * n + 12 * 12 * 768 * 1024  # 6N + 12 L H Q T, H*Q = n_embd


def test_init_is_gpt2s():
    torch.manual_seed(0)
    model = GPT({**SPEC, "vocab_size": 4000}, n_layer=8, n_head=4, n_embd=256, bias=True)
    assert model.wte.weight.std().item() == pytest.approx(INIT_STD, rel=0.05)
    assert model.blocks[0].attn.c_attn.weight.std().item() == pytest.approx(INIT_STD, rel=0.05)
    scaled = INIT_STD / math.sqrt(2 * 8)  # residual projections shrink with depth
    assert model.blocks[0].mlp.c_proj.weight.std().item() == pytest.approx(scaled, rel=0.05)
    assert model.blocks[0].attn.c_proj.weight.std().item() == pytest.approx(scaled, rel=0.05)
    assert model.blocks[0].mlp.c_fc.bias.abs().max().item() == 0


def test_activation_checkpointing_gives_the_same_gradients():
    x = torch.randint(0, 97, (2, 16))
    grads = []
    for checkpointing in (False, True):
        model = tiny(activation_checkpointing=checkpointing).train()
        model(x).square().mean().backward()
        grads.append(model.blocks[0].attn.c_attn.weight.grad)
    torch.testing.assert_close(grads[0], grads[1])


def test_longer_than_block_size_is_refused():
    with pytest.raises(ValueError, match="block_size=16"):
        tiny()(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize("kwargs, message", [
    ({"n_embd": 30, "n_head": 4}, "model.net.n_embd: 30 is not a multiple of model.net.n_head=4"),
    ({"n_embd": 12, "n_head": 4, "positions": "rotary"}, "model.net.positions: rotary needs an even head width"),
    ({"positions": "alibi"}, "model.net.positions"),
    ({"n_layer": 0}, "model.net.n_layer"),
])
def test_bad_sizes_name_the_key(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        GPT(SPEC, **{"n_layer": 2, "n_head": 2, "n_embd": 16, **kwargs})
