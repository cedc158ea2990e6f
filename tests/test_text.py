"""Words, stems and a query's terms: what every layer reads of text."""

from __future__ import annotations

from pathlib import Path

import bm25s

from procqa.text import BM25_STOPWORDS, QueryTerms, stems, tokenize, words


def test_a_query_is_split_once_into_words_stems_and_codes() -> None:
    terms = QueryTerms.of("How long is recovery after CPT 27447 knee replacement?")
    assert terms.words == ("recovery", "cpt", "27447", "knee", "replacement")
    assert terms.stems == tuple(stems([terms.text])[0])
    assert "27447" in terms.codes and "CPT" in terms.codes
    assert QueryTerms.of(terms) is terms


def test_names_and_bm25_drop_different_small_words() -> None:
    # "how" and "after" say which section is wanted: BM25 keeps them, names do not
    assert words("how long after surgery") == ["surgery"]
    assert stems(["how long after surgery"]) == [["how", "long", "after", "surgeri"]]
    # the BM25 list is the one every index was built with: bm25s's English list
    assert BM25_STOPWORDS == tuple(bm25s.stopwords.STOPWORDS_EN)


def test_stems_are_the_stems_bm25_indexes_every_text_with() -> None:
    texts = [
        "What's the recovery time after a TKA (27447)?",
        "Côte d'Ivoire naïve café: x-ray, 2nd opinion",
        "",
        "It isn't painful, is it? No, not usually.",
        *(path.read_text("utf-8") for path in sorted(Path(__file__).parent.parent.glob("corpus/*.txt"))[:5]),
    ]
    tokens = tokenize(texts)
    vocabulary = {number: token for token, number in tokens.vocab.items()}
    assert stems(texts) == [[vocabulary[i] for i in ids] for ids in tokens.ids]
