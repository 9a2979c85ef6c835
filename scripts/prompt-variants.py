"""Which line after tool results makes a small model answer: each candidate line on prompts a real
model read in a plan, a few seeds each, every reply classed as an answer, a tool call, a refusal,
an echo of its prompt, or empty. Prints the counts.

    scripts/real-model.sh                                  # once: llama-cpp-python and the GGUF
    REAL_MODEL_SIZE=1.5b scripts/real-model.sh             # or the 1.5B model
    PYTHONPATH=~/.cache/offline-agents/llama-site/cp311 uv run python scripts/prompt-variants.py \\
        [--gguf PATH] [--seeds 3] [PROMPT.txt ...]

The prompts default to tests/realmodel/prompts/*.txt: whole prompts as the model read them (the Ollama
stand-in writes each to STANDIN_PROMPT_LOG=DIR), each ending with the pipeline's line after tool
results as the last user turn. That turn is replaced by each candidate (or dropped: "none").
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from orchestrator.context_budget import AFTER_TOOLS  # noqa: E402

CANDIDATES = {
    "shipped": AFTER_TOOLS,
    "go on first": "Go on from the tool results above: call another of your tools if you still need one, "
    "otherwise answer.",  # the line before December 6
    "none": None,
}
_LAST_USER = re.compile(r"<\|im_start\|>user\n(?:(?!<\|im_start\|>).)*<\|im_end\|>\n<\|im_start\|>assistant\n?$", re.S)


def variant(prompt: str, line: str | None) -> str:
    head = _LAST_USER.sub("", prompt.rstrip("\n") + "\n")
    if head == prompt.rstrip("\n") + "\n":
        raise SystemExit("prompt-variants: error: a prompt does not end with a user turn; "
                         "use prompts the stand-in wrote to STANDIN_PROMPT_LOG")  # fmt: skip
    turn = f"<|im_start|>user\n{line}<|im_end|>\n" if line else ""
    return f"{head}{turn}<|im_start|>assistant\n"


def kind(reply: str, prompt: str) -> str:
    text = reply.strip()
    if not text:
        return "empty"
    if re.match(r"(I'm sorry|I am sorry|I apologi[sz]e|Sorry)\b", text):
        return "refusal"
    if "<tool_call>" in text or re.match(r"[{`<]", text):
        return "tool call"
    first = text.splitlines()[0].strip()
    if len(first) > 15 and first in prompt:
        return "echo"
    return "answer"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("prompts", nargs="*", type=Path)
    default_gguf = Path(os.environ.get("OFFLINE_AGENTS_CACHE") or Path.home() / ".cache" / "offline-agents")
    size = os.environ.get("REAL_MODEL_SIZE") or "1.5b"
    parser.add_argument("--gguf", type=Path,
                        default=default_gguf / "models" / f"qwen2.5-coder-{size}-instruct-q4_k_m.gguf")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--temperature", type=float, default=0.2)  # the real-model tier's
    args = parser.parse_args()
    try:
        from llama_cpp import Llama
    except ImportError:
        raise SystemExit("prompt-variants: error: llama_cpp is not importable; run scripts/real-model.sh and put "
                         "its llama-site directory on PYTHONPATH (see the usage above)") from None  # fmt: skip
    if not args.gguf.is_file():
        raise SystemExit(f"prompt-variants: error: {args.gguf} does not exist; "
                         "run scripts/real-model.sh or pass --gguf")  # fmt: skip
    prompts = args.prompts or sorted((ROOT / "tests" / "realmodel" / "prompts").glob("*.txt"))
    llm = Llama(model_path=str(args.gguf), n_ctx=8192, n_threads=os.cpu_count() or 2, verbose=False)
    totals: dict[str, Counter[str]] = {name: Counter() for name in CANDIDATES}
    for path in prompts:
        prompt = path.read_text()
        for name, line in CANDIDATES.items():
            text = variant(prompt, line)
            for seed in range(1, args.seeds + 1):
                out = llm.create_completion(text, max_tokens=60, temperature=args.temperature, seed=seed,
                                            stop=["<|im_end|>"])  # fmt: skip
                reply = out["choices"][0]["text"]
                found = kind(reply, prompt)
                totals[name][found] += 1
                print(f"{path.stem} | {name} | seed {seed} | {found}: {reply.strip()[:90]!r}", flush=True)
    print()
    kinds = ("answer", "tool call", "refusal", "echo", "empty")
    print(f"{'line after tool results':<24}" + "".join(f"{k:>11}" for k in kinds))
    for name, counts in totals.items():
        print(f"{name:<24}" + "".join(f"{counts[k]:>11}" for k in kinds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
