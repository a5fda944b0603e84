"""String in, string out: the translation SavedModel's `serving_default`, all inside the TF graph.

The steps mirror the Python path (`sensorium.pipelines.translation.predict`): placeholders become
``<phK>`` (K by first appearance of each distinct string, at most 16; RE2 runs the same pattern),
tokenisation with tensorflow-text's SentencePiece op, ``[BOS] + pieces`` cut to the source length,
greedy decoding in a ``tf.while_loop`` with the same constraints (never PAD/BOS/UNK, each placeholder
symbol exactly as often as in the source, EOS only once all are out), detokenisation, restoration.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

NEG = -1e9
_RE2_SPACE = r"\t\n\v\f\r "  # Python's ASCII \s; RE2's \s leaves out \v


def re2_pattern() -> str:
    """PLACEHOLDER_PATTERN (a verbose Python regex) as one compact RE2 pattern that matches the same.

    Verbose whitespace and comments go (outside character classes, where they are syntax) and ``\\s``
    becomes an explicit class with the vertical tab; everything else is copied as it is, so both
    engines run one pattern, which has no construct whose meaning differs between them.
    """
    from sensorium.runtime.placeholders import PLACEHOLDER_PATTERN

    return _compact_verbose(PLACEHOLDER_PATTERN.pattern)


def _compact_verbose(pattern: str) -> str:
    """A `re.VERBOSE` pattern without its layout and comments, ``\\s`` spelt out (see `re2_pattern`)."""
    out: list[str] = []
    i, in_class, class_start = 0, False, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            esc = pattern[i:i + 2]
            out.append(esc if esc != r"\s" else _RE2_SPACE if in_class else f"[{_RE2_SPACE}]")
            i += 2
            continue
        if in_class:
            in_class = not (c == "]" and i > class_start)  # a "]" right after "[" or "[^" is literal
        elif c == "[":
            in_class, class_start = True, i + 2 if pattern.startswith("[^", i) else i + 1
        elif c == "#":
            i = pattern.find("\n", i)
            i = len(pattern) if i < 0 else i
            continue
        elif c.isspace():
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def protect_graph(text: Any, max_symbols: int = 16) -> tuple[Any, Any]:
    """string (B,) -> (masked string (B,), originals string (B, max_symbols), "" where unused)."""
    import tensorflow as tf
    import tensorflow_text as tf_text

    pattern = re2_pattern()
    text = tf.strings.regex_replace(text, "\\x00", " ")  # as `Translator.prepare` does (the splitter stops at NUL)
    pieces, _, _ = tf_text.regex_split_with_offsets(text, pattern, keep_delim_regex_pattern=pattern)  # (B, None)
    is_ph = tf.strings.regex_full_match(pieces, pattern)  # ragged bool
    dense = pieces.to_tensor(default_value="")  # (B, M)
    ph = is_ph.to_tensor(default_value=False)  # (B, M)
    m = tf.shape(dense)[1]
    same = tf.logical_and(tf.equal(dense[:, :, None], dense[:, None, :]),
                          tf.logical_and(ph[:, :, None], ph[:, None, :]))  # (B, M, M)
    first = tf.argmax(tf.cast(same, tf.int32), axis=-1, output_type=tf.int32)  # (B, M): first equal placeholder
    positions = tf.range(m)[None, :]
    is_new = tf.logical_and(ph, tf.equal(first, positions))  # (B, M): a placeholder's first appearance
    rank = tf.cumsum(tf.cast(is_new, tf.int32), axis=1) - 1  # (B, M): index among distinct ones so far
    k = tf.gather(rank, first, batch_dims=1)  # (B, M): the symbol index of each piece
    use = tf.logical_and(ph, k < max_symbols)
    symbol = tf.strings.join(["<ph", tf.strings.as_string(k), ">"])
    masked_dense = tf.where(use, symbol, dense)
    masked = tf.strings.reduce_join(tf.RaggedTensor.from_tensor(masked_dense, lengths=pieces.row_lengths()), axis=1)
    # originals[b, j] = the piece whose first appearance got index j
    onehot = tf.logical_and(tf.logical_and(is_new, use)[:, :, None],
                            tf.equal(k[:, :, None], tf.range(max_symbols)[None, None, :]))  # (B, M, J)
    originals = tf.strings.reduce_join(tf.where(onehot, dense[:, :, None], ""), axis=1)  # (B, J)
    return masked, originals


def restore_graph(text: Any, originals: Any, max_symbols: int = 16) -> Any:
    """`<phK>` -> originals[:, K] ("" removes it), string (B,) -> (B,)."""
    import tensorflow as tf

    for j in range(max_symbols):
        parts = tf.strings.split(text, sep=f"<ph{j}>")  # (B, None)
        rows = parts.value_rowids()
        last = tf.equal(tf.range(tf.size(parts.flat_values, out_type=tf.int64)) - tf.gather(parts.row_starts(), rows),
                        tf.gather(parts.row_lengths(), rows) - 1)
        fill = tf.where(last, "", tf.gather(originals[:, j], rows))
        text = tf.strings.reduce_join(parts.with_flat_values(tf.strings.join([parts.flat_values, fill])), axis=1)
    return text


def greedy_translate_fn(module: Any, tokenizers: Any, *, max_source: int, max_target: int) -> Callable[[Any], Any]:
    """The `serving_default` function: text string (B,) -> {"translation": string (B,)}."""
    import tensorflow as tf

    from sensorium.pipelines.common.text_graph import tf_encode
    from sensorium.runtime.placeholders import PLACEHOLDER_SYMBOLS
    from sensorium.runtime.tokenizer import BOS_ID, EOS_ID, PAD_ID, UNK_ID

    n_sym = len(PLACEHOLDER_SYMBOLS)
    src_sym = tf.constant([tokenizers.source.piece_to_id(s) for s in PLACEHOLDER_SYMBOLS], tf.int32)  # (J,)
    tgt_sym = [tokenizers.target.piece_to_id(s) for s in PLACEHOLDER_SYMBOLS]
    vocab = tokenizers.target.vocab_size
    sym_onehot = tf.one_hot(tgt_sym, vocab, dtype=tf.float32)  # (J, V)
    base_forbid = tf.one_hot([PAD_ID, BOS_ID, UNK_ID], vocab, dtype=tf.float32)
    base_forbid = tf.reduce_max(base_forbid, axis=0)  # (V,)
    eos_onehot = tf.one_hot(EOS_ID, vocab, dtype=tf.float32)  # (V,)

    def translate(text):
        batch = tf.shape(text)[0]
        masked, originals = protect_graph(text, n_sym)
        source_ids = tf_encode(module.source_tokenizer, masked, max_source)  # (B, S)
        required = tf.reduce_sum(tf.cast(tf.equal(source_ids[:, :, None], src_sym[None, None, :]), tf.int32),
                                 axis=1)  # (B, J)
        memory = module.encode(source_ids)["memory"]  # (B, S, D)
        lengths = tf.reduce_sum(tf.cast(source_ids > 0, tf.int32), axis=1)
        limit = tf.minimum(max_target, 2 * tf.reduce_max(lengths) + 10)
        per_row_limit = tf.minimum(max_target, 2 * lengths + 10)  # (B,)

        def body(t, prefix, done, emitted):
            log_probs = module.decode_step(memory, source_ids, prefix)["log_probs"]  # (B, V)
            exhausted = tf.cast(emitted >= required, tf.float32)  # (B, J): no more of this symbol
            forbid = tf.minimum(1.0, base_forbid[None, :] + tf.matmul(exhausted, sym_onehot))  # (B, V)
            missing = tf.reduce_any(emitted < required, axis=1)  # (B,)
            forbid = tf.maximum(forbid, tf.cast(missing, tf.float32)[:, None] * eos_onehot[None, :])
            nxt = tf.argmax(log_probs + NEG * forbid, axis=-1, output_type=tf.int32)  # (B,)
            nxt = tf.where(done, PAD_ID, nxt)
            nxt = tf.where(tf.logical_and(~done, t >= per_row_limit), EOS_ID, nxt)  # at the row's limit: stop
            emitted += tf.cast(tf.equal(nxt[:, None], tf.constant(tgt_sym, tf.int32)[None, :]), tf.int32)
            done = tf.logical_or(done, tf.equal(nxt, EOS_ID))
            return t + 1, tf.concat([prefix, nxt[:, None]], axis=1), done, emitted

        def cond(t, prefix, done, emitted):
            return tf.logical_and(t <= limit, tf.logical_not(tf.reduce_all(done)))

        start = tf.fill([batch, 1], tf.constant(BOS_ID, tf.int32))
        _, prefix, _, emitted = tf.while_loop(
            cond, body, (tf.constant(0), start, tf.zeros([batch], tf.bool), tf.zeros([batch, n_sym], tf.int32)),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, None]), tf.TensorShape([None]),
                              tf.TensorShape([None, n_sym])))
        ids = prefix[:, 1:]  # (B, T)
        ended = tf.cumsum(tf.cast(tf.equal(ids, EOS_ID), tf.int32), axis=1) > 0
        keep = tf.logical_and(~ended, ids > EOS_ID)
        words = module.target_tokenizer.detokenize(tf.ragged.boolean_mask(ids, keep))  # (B,)
        # a symbol the length limit cut off is appended, as the Python path does
        short = tf.maximum(required - emitted, 0)  # (B, J)
        tails = tf.strings.reduce_join(tf.where(short > 0, tf.constant(list(PLACEHOLDER_SYMBOLS))[None, :], ""), axis=1)
        return {"translation": restore_graph(tf.strings.join([words, tails]), originals, n_sym)}

    return translate
