"""The core text LLM backends (transformers, OpenAI-compatible endpoint) and list-answer
parsing."""

from __future__ import annotations

import pytest

from oodbench.generative.parsing import parse_list_answer

# answers recorded from small local LLMs (OFFLINE_ASSETS / research notes), kept messy
MESSY = {
    "- Polar bear\n- Parrot\n- Giraffe": ["polar bear", "parrot", "giraffe"],
    "These 3 items are:\n1. Black stone\n2) mountain (landscape)\n3. Ginkgo Tree.":
        ["black stone", "mountain", "ginkgo tree"],
    "Sure! Here are some: lion, tiger, snow leopard": ["lion", "tiger", "snow leopard"],
    "- 4x4 truck, sports car with a trailer, racecar": ["4x4 truck", "racecar"],
    "* **Rapeseed** - a yellow crop\n* river": ["rapeseed", "river"],
    "Broad categories: animals, vehicles\n- sports car\n- sports car": ["sports car",
                                                                        "sports car"],
    "- - - - - -": [],
    # Qwen2.5-Coder-1.5B (int8 on the CPU) copying the prompt's "[name]" style
    "- 1 - [book]\n- 2 - [video game]\n- 3 - [food] (snacks)": ["book", "video game", "food"],
    "- [sea anemone]\n- [coral reef]": ["sea anemone", "coral reef"],
}


@pytest.mark.parametrize("answer, expected", list(MESSY.items()))
def test_parse_list_answer(answer, expected):
    assert parse_list_answer(answer) == expected


@pytest.fixture(scope="module")
def tiny_causal_lm(tmp_path_factory):
    """A random tiny Llama with a word-level tokenizer and a chat template (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-llm")
    words = ["[PAD]", "[UNK]", "<eos>", "user", "assistant", ":", "-", "cat", "dog", "list",
             "three", "animals", "red", "blue"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   eos_token="<eos>")
    fast.chat_template = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }}\n"
                          "{% endfor %}{% if add_generation_prompt %}assistant :{% endif %}")
    fast.save_pretrained(folder)
    config = LlamaConfig(vocab_size=len(words), hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                         max_position_embeddings=128, pad_token_id=0, eos_token_id=2)
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_transformers_llm_backend_runs_batched_and_prefilled(tiny_causal_lm):
    from oodbench.generative.text import TransformersTextGenerator

    llm = TransformersTextGenerator(model=str(tiny_causal_lm), max_new_tokens=4, prefill="- ",
                                    batch_size=2, device="cpu")
    chats = [[{"role": "user", "content": "list three animals"}],
             [{"role": "user", "content": "red"}], [{"role": "user", "content": "blue cat"}]]
    answers = llm.generate(chats)
    assert len(answers) == 3 and all(a.startswith("- ") for a in answers)
    assert llm.render(chats[0]).endswith("assistant :- ")
    assert answers == llm.generate(chats)  # greedy: deterministic


def test_from_model_adopts_a_built_model_and_answers_as_a_loaded_one(tiny_causal_lm):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from oodbench.generative.text import TransformersTextGenerator

    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    tokenizer.padding_side = "right"  # from_model must set left padding itself
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm)
    adopted = TransformersTextGenerator.from_model(model, tokenizer, "cpu", max_new_tokens=4,
                                                   batch_size=2)
    loaded = TransformersTextGenerator(model=str(tiny_causal_lm), max_new_tokens=4,
                                       batch_size=2, device="cpu")
    chats = [[{"role": "user", "content": "list three animals"}],
             [{"role": "user", "content": "blue cat"}]]
    assert tokenizer.padding_side == "left" and adopted.max_new_tokens == 4
    assert adopted.generate(chats) == loaded.generate(chats)


def test_cpu_int8_quantises_every_linear_per_channel_and_still_answers(tiny_causal_lm):
    import torch

    from oodbench.generative.text import TransformersTextGenerator

    llm = TransformersTextGenerator(model=str(tiny_causal_lm), max_new_tokens=4, device="cpu",
                                    cpu_quantize="int8")
    chats = [[{"role": "user", "content": "list three animals"}]]
    answers = llm.generate(chats)
    linears = [m for m in llm._model.modules() if type(m) is torch.nn.Linear]
    quantised = [m for m in llm._model.modules() if type(m).__name__ == "Linear"
                 and type(m).__module__.startswith("torch.ao.nn.quantized.dynamic")]
    assert not linears and quantised
    assert all(m.weight().qscheme() == torch.per_channel_affine for m in quantised)
    assert len(answers) == 1 and answers == llm.generate(chats)
    assert "cpu_quantize" in llm.identity()  # int8 answers never share a cache key with fp32


def test_transformers_llm_sampling_follows_the_seed(tiny_causal_lm):
    import torch

    from oodbench.generative.text import TransformersTextGenerator

    chats = [[{"role": "user", "content": "list three animals"}]]

    def sample(seed: int) -> str:
        llm = TransformersTextGenerator(model=str(tiny_causal_lm), max_new_tokens=12,
                                        temperature=1.5, seed=seed, device="cpu")
        return llm.generate(chats)[0]

    torch.manual_seed(123)
    state = torch.get_rng_state()
    draws = [sample(seed) for seed in range(4)]
    assert torch.equal(state, torch.get_rng_state())  # the caller's RNG is left alone
    assert draws[0] == sample(0)  # the same seed, the same answer
    assert len(set(draws)) > 1  # other seeds, other answers
    greedy = TransformersTextGenerator(model=str(tiny_causal_lm), seed=3)
    sampler = TransformersTextGenerator(model=str(tiny_causal_lm), temperature=0.7, seed=3)
    assert not greedy.uses_seed() and "seed" not in greedy.identity()
    assert sampler.uses_seed() and "'seed': 3" in sampler.identity()


def test_llm_missing_model_is_one_line(tmp_path):
    from oodbench.errors import MissingDataError
    from oodbench.generative.text import TransformersTextGenerator

    with pytest.raises(MissingDataError, match="fetch-llm"):
        TransformersTextGenerator(gguf_file=str(tmp_path / "x.gguf")).generate([[]])


def test_endpoint_unreachable_is_one_line():
    from oodbench.errors import OfflineError
    from oodbench.generative.text import OpenAIEndpointGenerator

    llm = OpenAIEndpointGenerator(base_url="http://127.0.0.1:9/v1", timeout_s=2)
    with pytest.raises(OfflineError, match="Cannot reach LLM endpoint"):
        llm.generate([[{"role": "user", "content": "hi"}]])


def test_endpoint_round_trip_on_loopback(monkeypatch):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from oodbench.generative.text import OpenAIEndpointGenerator

    seen = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.update(auth=self.headers.get("Authorization"), body=body, path=self.path)
            reply = json.dumps({"choices": [{"message": {"content": "- owl\n- kite"}}]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(reply.encode())

        def log_message(self, *args):
            return None

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("TEST_LLM_KEY", "secret")
        llm = OpenAIEndpointGenerator(base_url=f"http://127.0.0.1:{server.server_port}/v1",
                                      model="m", api_key_env="TEST_LLM_KEY", seed=7)
        assert llm.generate([[{"role": "user", "content": "birds?"}]]) == ["- owl\n- kite"]
    finally:
        server.shutdown()
    assert seen["path"] == "/v1/chat/completions" and seen["auth"] == "Bearer secret"
    assert seen["body"]["temperature"] == 0.0 and "secret" not in llm.identity()
    # the run seed travels with the request; a served model counts as seed-dependent
    assert seen["body"]["seed"] == 7 and "top_p" not in seen["body"]
    assert llm.uses_seed() and "seed=7" in llm.identity()
