"""HFBackend: batched sampling on a local transformers model with our own decode loop.

Why our own loop instead of `model.generate`: it prefills each prompt once and expands the KV cache
to the N samples (generate(num_return_sequences=N) prefills N copies), drops finished rows from the
batch, and records what the ledger needs — per-token logprobs and top-k logprobs, per-token timestamps,
and the prompt pass's hidden states for estimators — without a second forward pass.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import torch

from ... import timing
from ...errors import InputError
from ...metrics.flops import decode_flops, model_flops_spec, prefill_flops
from ..base import (CallUsage, Completion, Generation, PromptLike, PromptPass, PromptPassBatch, Request, SamplingParams,
                   check_prompt)
from ..stop import StopCheck
from .prefix_cache import PrefixCache
from .sampler import next_tokens
from .shared_prefix import SharedPrefixState
from .shared_prefix import active as shared_prefix_attention

clock_now = timing.CLOCK.now  # synchronises CUDA first while timing is on

TokenCallback = Callable[[int, int, int, float], None]  # (request index, sample index, token id, time)


def _plain_kv(model) -> bool:
    """Prefix reuse slices K/V per position: only valid for full-attention layers with a plain cache."""
    cfg = model.config
    types = getattr(cfg, "layer_types", None)
    if types is not None:  # newer configs spell out each layer (Qwen2 lists full attention despite a window size)
        if any(t != "full_attention" for t in types):
            return False
    elif getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True):
        return False
    return getattr(cfg, "model_type", "") not in ("mamba", "mamba2", "falcon_mamba", "rwkv", "jamba", "zamba")


def _shared_prefix_ok(model) -> bool:
    """The shared-prefix kernel is plain softmax attention: no logit softcapping, no ALiBi-style biases."""
    cfg = model.config
    if getattr(cfg, "attn_logit_softcapping", None) or getattr(cfg, "alibi", False):
        return False
    return _plain_kv(model) and all(hasattr(m, "layer_idx") for m in model.modules()
                                    if type(m).__name__.endswith("Attention"))


class HFBackend:
    def __init__(self, model, tokenizer, model_id: str | None = None, max_batch_rows: int = 64,
                 compact_fraction: float = 0.25, prefix_cache_tokens: int = 32768, shared_prefix: bool = True,
                 shared_prefix_min_tokens: int = 192, load_options=None):
        self.model, self.tokenizer = model, tokenizer
        self.load_options = load_options  # ModelOptions the model was loaded with (from_pretrained), if known
        self.model_id = model_id or getattr(model.config, "_name_or_path", "model")
        self.max_batch_rows = max_batch_rows
        self.compact_fraction = compact_fraction  # compact the batch once this share of rows is dead
        cfg = model.config
        self.context_window = int(getattr(cfg, "max_position_embeddings", None) or tokenizer.model_max_length)
        self.flops_spec = model_flops_spec(cfg)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.eos_ids = self._eos_ids()
        self.has_chat_template = bool(getattr(tokenizer, "chat_template", None))
        # Reuse prompt KV across waves/steps; off (0) for caches that are not plain per-layer K/V.
        self.prefix_cache = PrefixCache(prefix_cache_tokens) if prefix_cache_tokens and _plain_kv(model) else None
        # Decode attends to one copy of each prompt's K/V (see shared_prefix.py) where the cache is plain K/V;
        # otherwise the prompt cache is expanded to the N samples.
        self.shared_prefix = bool(shared_prefix) and _shared_prefix_ok(model)
        # Below this prompt width the copied cache is as cheap to read as the kernel's extra steps cost
        # (measured on CPU: parity at ~150 tokens, 1.15x at 280, 2x at 540 for 8 samples).
        self.shared_prefix_min_tokens = shared_prefix_min_tokens
        if self.device.type == "cuda":
            timing.CLOCK.cuda = True
        # Running totals over the backend's life, so tests can check strategies' ledgers against them.
        self.totals = CallUsage(model_calls=0)

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, device: str = "auto", dtype="auto",
                        quantization: str | None = None, attention: str | None = None, compile: bool = False, **kw):
        from .loading import load_model

        model, tok, model_id = load_model(name_or_path, device=device, dtype=dtype, quantization=quantization,
                                          attention=attention, compile=compile)
        from .load_options import ModelOptions

        # A compiled forward would break its graph around the shared-prefix kernel's Python bookkeeping.
        kw.setdefault("shared_prefix", not compile)
        opts = ModelOptions(quantization=quantization, attention=attention, compile=compile)
        return cls(model, tok, model_id=model_id, load_options=opts, **kw)

    def settings(self) -> dict:
        """Everything besides the prompts and the plan that decides what this backend returns: the model and
        its version, precision, quantization, attention kernel, compile, device kind, the decode-loop
        switches, and the torch / transformers versions (their kernels set the numerics). Eval runs hash
        this into their fingerprint and write it into run.json and every record."""
        import transformers

        from .loading import model_revision

        cfg = self.model.config
        opts = self.load_options
        quant = opts.quantization if opts is not None else None
        if quant is None and getattr(cfg, "quantization_config", None) is not None:
            qc = cfg.quantization_config
            quant = qc.get("quant_method") if isinstance(qc, dict) else getattr(qc, "quant_method", str(qc))
            quant = str(getattr(quant, "value", quant))
        return {"kind": "hf", "model": self.model_id, "revision": model_revision(self.model_id, self.model),
                "dtype": str(self.model.dtype).removeprefix("torch."), "quantization": quant,
                "attention": getattr(cfg, "_attn_implementation", None),
                "compile": bool(opts.compile) if opts is not None else None, "device": self.device.type,
                "shared_prefix": self.shared_prefix, "shared_prefix_min_tokens": self.shared_prefix_min_tokens,
                "max_batch_rows": self.max_batch_rows, "torch": torch.__version__,
                "transformers": transformers.__version__}

    # -- helpers -------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _eos_ids(self) -> set[int]:
        ids = set()
        for src in (self.tokenizer.eos_token_id, getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(src, int):
                ids.add(src)
            elif isinstance(src, (list, tuple)):
                ids.update(int(i) for i in src)
        return ids

    def capabilities(self) -> set[str]:
        return {"logprobs", "top_logprobs", "hidden_states", "timestamps", "prefix", "next_token_logprobs"}

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def render(self, prompt: PromptLike, prefix: str = "", raw: bool = False) -> list[int]:
        """Token ids the model sees: chat template (when present and not raw) + assistant prefix."""
        check_prompt(prompt)
        if not raw and self.has_chat_template:
            msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
            text = self.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
            return self.tokenizer(text + prefix, add_special_tokens=False).input_ids
        if not isinstance(prompt, str):
            raise InputError("chat messages need a tokenizer with a chat template; pass a string with raw=True")
        return self.tokenizer(prompt + prefix).input_ids

    def _check_length(self, ids: list[int], max_new: int, i: int) -> None:
        if len(ids) + max_new > self.context_window:
            raise InputError(
                f"prompt {i} is {len(ids)} tokens; with max_new_tokens={max_new} it exceeds the model's "
                f"context window of {self.context_window} tokens")

    # -- prompt pass ---------------------------------------------------------------------------
    @torch.inference_mode()
    def _prefill(self, id_lists: list[list[int]], hidden: bool):
        """One forward over the prompts' uncached suffixes, left-padded, after their cached prefixes.

        Returns (last logits [B, vocab], cache, attention mask, prompt passes, reused token counts).
        The mask may hold holes (padding between a cached prefix and its suffix); positions come from
        the mask's running count, so every real token keeps its true position.
        """
        dev = self.device
        use_cache = self.prefix_cache is not None and not hidden  # hidden states need the full pass
        if use_cache and all(self.prefix_cache.has_full(tuple(x)) for x in id_lists):
            return self._cached_prefill(id_lists)
        hits = [self.prefix_cache.lookup(tuple(x)) if use_cache else (None, 0) for x in id_lists]
        wc = max(n for _, n in hits)
        ws = max(len(x) - n for x, (_, n) in zip(id_lists, hits))
        B = len(id_lists)
        input_ids = torch.full((B, ws), self.pad_id, dtype=torch.long)
        mask = torch.zeros((B, wc + ws), dtype=torch.long)
        for r, (ids, (_, n)) in enumerate(zip(id_lists, hits)):
            suffix = ids[n:]
            input_ids[r, ws - len(suffix):] = torch.tensor(suffix)
            mask[r, wc - n:wc] = 1
            mask[r, wc + ws - len(suffix):] = 1
        input_ids, mask = input_ids.to(dev), mask.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)[:, wc:]
        cache = self._past(hits, wc) if wc else None
        # logits_to_keep=1: only the last position's logits are needed (saves a vocab x T matmul).
        out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=pos, cache=cache, use_cache=True,
                         output_hidden_states=hidden, logits_to_keep=1)
        last = out.logits[:, -1, :].float()
        if self.prefix_cache is not None:
            for r, ids in enumerate(id_lists):
                keep = mask[r].nonzero().squeeze(-1)
                self.prefix_cache.store(tuple(ids), [(layer.keys[r, :, keep], layer.values[r, :, keep])
                                                     for layer in out.cache.layers], logits=last[r].clone())
        passes: list[PromptPass | None] = [None] * B
        if hidden:
            # Pool layer by layer: stacking all [B, T, H] layers first would copy the whole pass.
            m = mask[:, wc:, None].float()
            mean = torch.stack([(h.float() * m).sum(1) for h in out.hidden_states], 1) / m.sum(1)[:, None]
            last_h = torch.stack([h[:, -1] for h in out.hidden_states], 1).float()  # [B, L+1, H]
            mean, last_h = mean.cpu(), last_h.cpu()
            lp = torch.log_softmax(last, dim=-1).cpu()
            for r, ids in enumerate(id_lists):
                # clone: a view would keep the whole batch's pooled stack alive per prompt
                passes[r] = PromptPass(n_tokens=len(ids), mean_hidden=mean[r].clone(),
                                       last_hidden=last_h[r].clone(), next_token_logprobs=lp[r].clone())
        return last, out.cache, mask, passes, [n for _, n in hits]

    def _cached_prefill(self, id_lists: list[list[int]]):
        """_prefill's result with no forward: every prompt is cached whole with its last logits (an
        estimator's prompt pass, or an earlier wave of the same prompts, ran it)."""
        full = [self.prefix_cache.lookup_full(tuple(x)) for x in id_lists]
        hits = [(kv, len(x)) for (kv, _), x in zip(full, id_lists)]
        wc = max(len(x) for x in id_lists)
        mask = torch.zeros((len(id_lists), wc), dtype=torch.long)
        for r, x in enumerate(id_lists):
            mask[r, wc - len(x):] = 1
        last = torch.stack([logits for _, logits in full]).to(self.device)
        return last, self._past(hits, wc), mask.to(self.device), [None] * len(id_lists), [len(x) for x in id_lists]

    def _past(self, hits, wc: int):
        """A cache holding each row's reused prefix, right-aligned to width wc (zeros where masked)."""
        from transformers import DynamicCache

        ref = next(kv for kv, n in hits if n)
        cache = DynamicCache(config=self.model.config)
        for layer, (k0, v0) in enumerate(ref):
            heads, _, hd = k0.shape
            keys = k0.new_zeros((len(hits), heads, wc, hd))
            values = v0.new_zeros((len(hits), heads, wc, hd))
            for r, (kv, n) in enumerate(hits):
                if n:
                    keys[r, :, wc - n:] = kv[layer][0][:, :n]
                    values[r, :, wc - n:] = kv[layer][1][:, :n]
            cache.update(keys, values, layer)
        return cache

    def prompt_pass(self, prompts: Sequence[PromptLike], raw: bool = False) -> PromptPassBatch:
        with timing.phase(timing.BACKEND):
            t0 = clock_now()
            ids = [self.render(p, raw=raw) for p in prompts]
            for i, x in enumerate(ids):
                self._check_length(x, 0, i)
            t1 = clock_now()
            passes = self._prefill(ids, hidden=True)[3]
            t2 = clock_now()
            times = {"tokenize": t1 - t0, "prefill": t2 - t1} if timing.enabled() else {}
            usage = CallUsage(prompt_tokens=sum(map(len, ids)), forward_passes=1,
                              flops=sum(prefill_flops(*self._spec(), len(x)) for x in ids),
                              wall_s=t2 - t0, started=t0, times=times)
            self.totals.add(usage)
        return PromptPassBatch(passes, usage)

    def _spec(self):
        s = self.flops_spec
        return s.n_params_non_embedding, s.n_layers, s.d_attn

    # -- generation ----------------------------------------------------------------------------
    def generate(self, requests: Sequence[Request], params: SamplingParams, *, hidden_states: bool = False,
                 on_token: TokenCallback | None = None) -> Generation:
        if not requests:
            return Generation([], [], [], CallUsage(model_calls=0))
        with timing.phase(timing.BACKEND):
            return self._generate(requests, params, hidden_states, on_token)

    def _generate(self, requests, params, hidden_states, on_token) -> Generation:
        t0 = clock_now()
        ids = [self.render(r.prompt, r.prefix, r.raw) for r in requests]
        for i, x in enumerate(ids):
            self._check_length(x, params.max_new_tokens, i)
        t_tok = clock_now() - t0
        gen = torch.Generator(device=self.device)
        gen.manual_seed(params.seed if params.seed is not None else int(torch.seed() % (2**63)))
        completions: list[list[Completion]] = [[] for _ in requests]
        passes: list[PromptPass | None] = [None] * len(requests)
        per: list[CallUsage] = [CallUsage(started=t0) for _ in requests]
        n, layers, d = self._spec()
        usage = CallUsage(started=t0)
        group_of, group_times = [0] * len(requests), []
        for gi, group in enumerate(self._groups(requests, ids)):
            g_comp, g_pass, forwards, reused, g_times = self._run_group(
                [ids[i] for i in group], [requests[i].n for i in group], params, gen, hidden_states, on_token, group,
                [requests[i].will_continue for i in group])
            group_times.append(g_times)
            for k, i in enumerate(group):
                completions[i], passes[i], group_of[i] = g_comp[k], g_pass[k], gi
                u = per[i]
                u.prompt_tokens, u.samples = len(ids[i]), requests[i].n
                u.cached_prompt_tokens = reused[k]
                u.generated_tokens = sum(c.n_tokens for c in g_comp[k])
                # A sample's first token comes from the prefill logits; each later token needs one
                # forward of the previous token at a context one longer than before.
                u.flops = prefill_flops(n, layers, d, len(ids[i]) - reused[k], past_len=reused[k]) + sum(
                    decode_flops(n, layers, d, len(ids[i]), max(c.n_tokens - 1, 0)) for c in g_comp[k])
                u.forward_passes = forwards
            usage.forward_passes += forwards
        for field_ in ("prompt_tokens", "cached_prompt_tokens", "samples", "generated_tokens", "flops"):
            setattr(usage, field_, sum(getattr(u, field_) for u in per))
        usage.wall_s = clock_now() - t0
        if timing.enabled():
            usage.times = {"tokenize": t_tok}
            for g in group_times:
                for k, v in g.items():
                    usage.times[k] = usage.times.get(k, 0.0) + v
        busy = [sum(g.values()) for g in group_times]
        for i, u in enumerate(per):
            # Every request was inside the call for all of it: waiting while other buckets ran is queueing.
            u.wall_s = usage.wall_s
            if timing.enabled():
                u.times = {"tokenize": t_tok, **group_times[group_of[i]],
                           "queue": sum(busy) - busy[group_of[i]]}
        self.totals.add(usage)
        return Generation(completions, passes, [len(x) for x in ids], usage, per)

    def _groups(self, requests: Sequence[Request], ids: list[list[int]]) -> list[list[int]]:
        """Bucket requests by prompt length so that one batch holds at most max_batch_rows samples."""
        order = sorted(range(len(requests)), key=lambda i: len(ids[i]))
        groups, cur, rows = [], [], 0
        for i in order:
            n = requests[i].n
            if cur and rows + n > self.max_batch_rows:
                groups.append(cur)
                cur, rows = [], 0
            cur.append(i)
            rows += n
        if cur:
            groups.append(cur)
        return groups

    @torch.inference_mode()
    def _run_group(self, ids, ns, params: SamplingParams, gen, hidden, on_token, req_index, continued=None):
        dev = self.device
        t0 = clock_now()
        last, cache, mask, passes, reused = self._prefill(ids, hidden)
        t_prefill = clock_now()
        detok = 0.0  # stop-string checks and decoding text, inside the decode loop
        forwards = 0 if all(r == len(x) for r, x in zip(reused, ids)) else 1  # 0: served from the cache
        owner = torch.repeat_interleave(torch.arange(len(ids)), torch.tensor(ns))  # row -> prompt
        sample_of = torch.cat([torch.arange(n) for n in ns])                      # row -> sample index
        expand = owner.to(dev)
        shared = self.shared_prefix and max(ns) > 1 and mask.shape[1] >= self.shared_prefix_min_tokens
        kv = _SharedKV(cache, mask, expand) if shared else _ExpandedKV(cache, mask, expand)
        logits = last[expand]
        rows = len(owner)
        toks: list[list[int]] = [[] for _ in range(rows)]
        lps: list[list[float]] = [[] for _ in range(rows)]
        tops: list[list[list[float]]] = [[] for _ in range(rows)]
        times: list[list[float]] = [[] for _ in range(rows)]
        finish: list[str | None] = [None] * rows
        alive = list(range(rows))   # batch position -> row id
        check = StopCheck(params, self.eos_ids)
        k_top = params.top_logprobs
        for step in range(params.max_new_tokens):
            nxt = next_tokens(logits, params.temperature, params.top_k, params.top_p, gen)
            logp = torch.log_softmax(logits, dim=-1)
            chosen = logp.gather(-1, nxt[:, None]).squeeze(-1).tolist()
            top_vals = torch.topk(logp, k_top, dim=-1).values.tolist() if k_top else None
            nxt_list = nxt.tolist()
            now = time.perf_counter()
            for b, row in enumerate(alive):
                if finish[row] is not None:
                    continue
                tok = nxt_list[b]
                toks[row].append(tok)
                lps[row].append(chosen[b])
                times[row].append(now)
                if top_vals is not None:
                    tops[row].append(top_vals[b])
                if on_token is not None:
                    on_token(req_index[int(owner[row])], int(sample_of[row]), tok, now)
                d0 = time.perf_counter()
                tail = self.tokenizer.decode(toks[row][-check.tail_tokens:], skip_special_tokens=True) \
                    if check.tail_tokens else ""
                finish[row] = check.after_token(tok, tops[row], tail)
                detok += time.perf_counter() - d0
            if step == params.max_new_tokens - 1:
                break
            live = [b for b, row in enumerate(alive) if finish[row] is None]
            if not live:
                break
            dead = len(alive) - len(live)
            if dead and dead >= self.compact_fraction * len(alive):
                self._store_rows(kv, [(b, r) for b, r in enumerate(alive) if finish[r]], ids, owner, toks, finish,
                                 continued)
                keep = torch.tensor(live, device=dev)
                kv.select(keep)
                nxt = nxt[keep]
                alive = [alive[b] for b in live]
            logits = kv.step(self.model, nxt)
            forwards += 1
        self._store_rows(kv, list(enumerate(alive)), ids, owner, toks, finish, continued)
        t_decode = clock_now()
        comps: list[list[Completion]] = [[] for _ in ids]
        for row in range(rows):
            reason = finish[row] or "length"
            body = toks[row][:-1] if reason == "eos" else toks[row]
            end = check.end(self.tokenizer.decode(body, skip_special_tokens=True), reason)
            comps[int(owner[row])].append(Completion(text=end.text, token_ids=toks[row],
                                                     finish_reason=end.finish_reason, logprobs=lps[row],
                                                     top_logprobs=tops[row], token_times=times[row],
                                                     stop_string=end.stop_string))
        t_end = clock_now()
        times = {"prefill": t_prefill - t0, "decode": t_decode - t_prefill - detok,
                 "detokenize": detok + t_end - t_decode}
        return comps, passes, forwards, reused, times

    def _store_rows(self, kv, pairs, ids, owner, toks, finish, continued=None) -> None:
        """Keep finished rows' prompt + generated KV, so a continuation (the next beam-search step,
        a refinement turn over this answer) prefills only what is new. Rows cut by length are skipped
        (nothing continues from them) unless their request says it `will_continue` (a thinking chunk:
        the next chunk continues exactly there)."""
        if self.prefix_cache is None:
            return
        for b, row in pairs:
            p = int(owner[row])
            keep = finish[row] in ("stop", "eos") or (finish[row] is None and continued is not None and continued[p])
            if not keep or len(toks[row]) < 2:
                continue
            key = tuple(ids[p]) + tuple(toks[row][:-1])  # the last token was never fed
            self.prefix_cache.store(key, kv.row_kv(b, len(toks[row]) - 1))


class _ExpandedKV:
    """Decode state for caches that are not plain K/V: the prompt cache is copied to every sample row."""

    def __init__(self, cache, mask, expand):
        cache.batch_select_indices(expand)
        self.cache, self.mask = cache, mask[expand]
        self.fed = 0  # decode steps so far: each appended one position to every row

    def select(self, keep) -> None:
        self.cache.batch_select_indices(keep)
        self.mask = self.mask[keep]

    def step(self, model, nxt):
        self.mask = torch.cat([self.mask, torch.ones((len(nxt), 1), dtype=self.mask.dtype, device=nxt.device)], 1)
        pos = self.mask.sum(-1, keepdim=True) - 1
        out = model(input_ids=nxt[:, None], attention_mask=self.mask, position_ids=pos, cache=self.cache,
                    use_cache=True)
        self.cache = out.cache
        self.fed += 1
        return out.logits[:, -1, :].float()

    def row_kv(self, b: int, n_generated: int):
        pos = self.mask[b].nonzero().squeeze(-1)
        pos = pos[: len(pos) - self.fed + n_generated]  # the prompt's tokens, then the row's own
        return [(layer.keys[b, :, pos], layer.values[b, :, pos]) for layer in self.cache.layers]


class _SharedKV:
    """Decode state that keeps one copy of each prompt's K/V and per-row generated K/V (shared_prefix.py)."""

    def __init__(self, cache, mask, expand):
        self.state = SharedPrefixState([(layer.keys, layer.values) for layer in cache.layers], mask, expand)

    def select(self, keep) -> None:
        self.state.select(keep)

    def step(self, model, nxt):
        with shared_prefix_attention(model):
            out = model(input_ids=nxt[:, None], position_ids=self.state.positions(), use_cache=False,
                        shared_prefix=self.state)
        self.state.advance()
        return out.logits[:, -1, :].float()

    def row_kv(self, b: int, n_generated: int):
        return self.state.row_kv(b, n_generated)
