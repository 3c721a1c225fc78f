"""One frozen dataclass holding every knob of a mining run, its default and its validation.

CLI flags map one-to-one to the fields: ``range_max`` is ``--range-max``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Collection, Optional, Union

from negmine.errors import ConfigError
from negmine.rules import registry
from negmine.rules.base import flag
from negmine.rules.relative_margin import resolve as resolve_relative_margin

RETRIEVERS = ("bm25", "dense", "hybrid")

FUSIONS = ("rrf", "score")

MARGIN_REFERENCES = ("min", "mean", "max")

BM25_METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")

#: ``bm25_tokenizer``: the kinds (``ngrams`` takes ``:N``, the n-grams' length: ``ngrams:3``).
BM25_TOKENIZERS = ("auto", "words", "model", "ngrams")
_NGRAMS = re.compile(r"^ngrams(?::([1-9]))?$")

SAMPLING_STRATEGIES = ("top", "random", "simans")

#: ``precision``: what the models compute in (``auto``: fp16 on CUDA, fp32 elsewhere).
PRECISIONS = ("auto", "fp32", "fp16", "bf16")

#: SimANS's a and b: the defaults of its reference code (microsoft/SimXNS, SimANS/wiki/co_training_wiki_train.py).
SIMANS_A = 0.5

SIMANS_B = 0.0

OUTPUT_FORMATS = ("triplet", "n-tuple", "labeled-pair", "labeled-list", "flagembedding")

#: ``all`` columns, or only those a trainer consumes (texts, and the labeled list's labels: no ids, no scores).
COLUMN_SETS = ("all", "training")
#: The layouts whose rows ``--train-batch-size`` composes into batches: a row per anchor with its positive and
#: negatives (the labeled layouts score pairs one by one: no in-batch negatives).
BATCHED_LAYOUTS = ("triplet", "n-tuple", "flagembedding")

#: Devices torch knows by these names (an index after a colon where several exist).
DEVICE = re.compile(r"^(auto|cpu|mps|(cuda|xpu|npu|hpu)(:\d+)?)$")

#: ``--model none``: no bi-encoder at all (BM25 retrieval, and the rules that need no model).
NO_MODEL = "none"

#: The options of the rules that read the retrieval bi-encoder's cosines, and their setting when there is none
#: (``--model none``).
BI_ENCODER_RULES = {o.name: False if o.kind == "bool" else None for r in registry.RULES if r.bi_encoder
                    for o in r.options}


#: Fields that say how a run is carried out, not what it produces: the provenance leaves them out.
RUN_ONLY = ("query_batch_size", "resume", "engine", "ray_address", "workers", "gpus_per_worker",
            "endpoint_concurrency", "endpoint_retries", "endpoint_timeout", "endpoint_max_requests",
            "endpoint_api_key_env")

ENGINES = ("local", "ray")

#: Settings added since the outputs' provenance was frozen by golden files, and their default: left out of the
#: provenance at that default, so that a run that does not use them writes the bytes it wrote before them (the
#: provenance's "resolved" says what ``auto`` chose when it matters).
SINCE_GOLDEN = {"bm25_tokenizer": "auto", "train_batch_size": None, "llm_judge": None, "llm_confirm": None,
                "llm_judge_prompt": None}


def _rule(name: str) -> Any:
    """The default of an option a rule owns (``negmine.rules``: the rule declares it)."""
    return registry.OPTIONS[name].default


@dataclass(frozen=True)
class MineConfig:
    """Every setting of a mining run. ``None`` for a column name means: detect it from the usual names.

    Attributes:
        corpus_id_column: Corpus id column (default: ``_id``, ``id``, ``doc_id``, ``docid``, ``corpus_id``).
        corpus_text_column: Corpus text column (default: ``text``, ``contents``, ``content``, ``passage``...).
        corpus_title_column: Optional title column, joined before the text (default: ``title`` if present).
            Pass ``""`` to ignore a title column that exists.
        query_id_column: Query id column (default: ``_id``, ``id``, ``query_id``, ``qid``).
        query_text_column: Query text column (default: ``text``, ``query``, ``question``).
        qrels_query_column: Qrels query id column (default: ``query-id``, ``query_id``, ``qid``).
        qrels_doc_column: Qrels document id column (default: ``corpus-id``, ``doc_id``, ``docid``, ``pid``).
        qrels_score_column: Qrels relevance column (default: ``score``, ``relevance``, ``label`` if present;
            without one every row is a positive). Rows with a score <= 0 are not positives.
        pairs_anchor_column: Query text column of a pairs file (default: ``anchor``, ``query``, ``question``).
        pairs_positive_column: Positive text column of a pairs file (default: ``positive``, ``pos``,
            ``document``, ``passage``, ``answer``).
        retriever: Which retriever proposes candidates: ``bm25``, ``dense`` or ``hybrid`` (both, fused).
        model: Sentence-transformers bi-encoder name or path (``None``: the embedded all-MiniLM-L6-v2); ``"none"``:
            no bi-encoder at all, for ``retriever="bm25"``: the rules that read its cosines (near-duplicate,
            positive proximity, agreement) are off, twin queries are those with the same normalised text, and the
            score rules need a ``reranker`` (``for_run`` gives the settings such a run uses).
        query_prompt: Text put before every query when embedding it.
        corpus_prompt: Text put before every document when embedding it.
        query_prompt_name: Name of a prompt stored with the model, for queries (default: its ``query`` prompt).
        corpus_prompt_name: Name of a prompt stored with the model, for documents (default: its ``document``
            prompt).
        batch_size: Texts per encoder forward pass.
        max_seq_length: Truncation length in tokens (``None``: the model's own).
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
        precision: What the models (the bi-encoder, the judge) compute in: ``auto`` (fp16 on CUDA, fp32 elsewhere),
            ``fp32``, ``fp16`` or ``bf16``. Part of the embeddings' identity (and so of the cache's keys and the
            provenance) unless fp32.
        faiss_index: ``Flat`` for exact inner-product search, ``auto`` (exact up to 1M documents, an on-disk IVF
            index above), or a faiss index factory string
            (``IVF1024,Flat``, ``HNSW32``, ``IVF4096,PQ32``) for corpora too large for exact search.
        fusion: How hybrid fuses the two lists: ``rrf`` (reciprocal rank fusion) or ``score`` (normalised sum).
        rrf_k: The reciprocal rank fusion constant.
        bm25_k1: BM25 term-frequency saturation.
        bm25_b: BM25 length normalisation.
        bm25_method: BM25 variant, as bm25s names them.
        bm25_stemmer: Snowball stemmer language (PyStemmer), or ``"none"``.
        bm25_stopwords: Stopword list language as bm25s names it (``"en"``), or ``"none"``.
        bm25_tokenizer: What BM25 takes for a token: ``words``, ``ngrams:N`` (character n-grams over scripts
            without spaces), ``model`` (the embedding model's tokenizer) or ``auto`` (``ngrams:2`` for a corpus
            mostly in scripts without spaces, else ``words``): ``negmine.retrieve.bm25_tokenizers``.
        reranker: The judge of the score rules: a sentence-transformers CrossEncoder name or path, or a
            sentence-transformers bi-encoder (recognised from its files; it judges by cosine); without one the
            retrieval bi-encoder's cosine does.
        reranker_batch_size: Pairs per reranker batch.
        reranker_max_length: Truncation length of the reranker's (query, document) input, in tokens.
        absolute_margin: Drop a candidate scoring above ``positive - absolute_margin``.
        relative_margin: Drop a candidate scoring above ``positive - |positive| * relative_margin`` (sign-safe).
            ``"auto"``: 0.05 with a ``--reranker`` judge (NV-Retriever's TopK-PercPos at 95%), none when the
            retrieval bi-encoder judges its own candidates (docs/mining.md); ``relative_margin_for`` resolves it.
        max_score: Drop a candidate scoring above this.
        min_score: Drop a candidate scoring below this.
        margin_reference: Which positive score margins are taken from when a query has several: ``min``
            (the lowest-scoring positive), ``mean`` or ``max``.
        max_positive_similarity: Drop a candidate whose bi-encoder cosine to one of its query's positives is above
            this: a near-duplicate of a positive.
        positive_proximity: Drop a candidate nearer one of its query's positives than the query is: its
            bi-encoder cosine to the positive above the query's cosine to it plus this margin (the candidate sits
            in the positive's own neighbourhood). 0 drops every candidate closer to a positive than the query; a
            larger margin drops fewer.
        lexical_overlap: Drop a candidate that repeats more than this share of a positive's wording: BM25 of the
            positive's text as the query against the candidate, over its score against the positive itself.
        agreement: Drop a candidate that both retrievers put above the positive (a higher BM25 score and a
            higher bi-encoder cosine for the query than the reference positive's).
        cross_query: Drop a candidate that is a positive of another query asking the same question: the same
            normalised text, or a bi-encoder cosine between the two queries of at least this.
        percentile_margin: The margin in percentiles of the run's own positive scores (0.1 = ten points below
            the positive's percentile): a threshold that means the same for any judge's scale.
        percentile_floor: The percentile gate never drops below this percentile of all positives' scores (a weak
            positive does not starve its query).
        percentile_cap: Drop a candidate scoring above this percentile of all positives' scores, whatever its
            own positive scored (a strong positive does not open the gate); 1 turns the cap off.
        score_all: Score every retrieved candidate with the judge (and gather every rule's evidence) instead of
            stopping once a query has enough: the same picks, more work, and a candidates file that holds every
            value ``negmine refilter`` and ``negmine sweep`` need.
        range_min: Skip this many of the highest-ranked non-positive candidates.
        range_max: Consider non-positive candidates up to this rank (exclusive); also the retrieval depth.
        num_negatives: Negatives per query-positive pair.
        sampling_strategy: ``top`` takes the highest-ranked eligible candidates, ``random`` samples them
            uniformly, ``simans`` samples them with probability proportional to exp(-a (s - s_positive - b)^2)
            of the judge's scores (SimANS, Zhou et al. 2022): candidates scoring near the positive are favoured.
        simans_a: SimANS's a: how fast the weight falls off away from s_positive + b (in 1 / score^2 units).
        simans_b: SimANS's b: where the weight peaks, relative to the positive's score.
        seed: Seed of the random generators (``random`` and ``simans`` sampling).
        difficulty_bands: Write each negative's difficulty band: the rank window cut into this many equal slices,
            1 = the best-ranked (hardest); for curriculum training. ``None``: no band column.
        promote_false_negatives: Write the candidates dropped as likely false negatives as extra positives of
            their query (rows of their own, with the negatives of the query's first positive).
        llm_judge: ``MODEL@URL``: a chat model behind an OpenAI-compatible endpoint that judges each picked
            negative; one it calls relevant is a likely false negative (``llm_judge``), dropped for the next
            candidate (``negmine.judges.llm``).
        llm_confirm: ``MODEL@URL``: a second chat model that sees only what ``llm_judge`` flagged; flagged when
            both say relevant.
        llm_judge_prompt: A prompt template file ({query}, {positive}, {candidate}) instead of the default.
        output_format: ``triplet``, ``n-tuple``, ``labeled-pair``, ``labeled-list`` (sentence-transformers'
            layouts) or ``flagembedding`` (FlagEmbedding's training data: a row per query with ``query``, ``pos``,
            ``neg``).
        output_scores: Add score columns to the output.
        prompt: ``flagembedding`` only: the instruction written in every row's ``prompt`` column (FlagEmbedding
            puts it before the query).
        columns: ``all`` (texts, ids and any scores) or ``training``: only what a trainer consumes (``anchor``,
            ``positive``, ``negative`` or ``negative_1`` .. ``negative_N``; ``anchor``, ``docs``, ``labels`` for
            ``labeled-list``), so that the table trains as it is.
        train_batch_size: The trainer's batch size B: write the rows in batches of B (a ``batch`` column), near
            anchors together and no in-batch false negative (``negmine.batching``); ``triplet``, ``n-tuple`` or
            ``flagembedding``. ``None``: rows in query order.
        strict: Fail, instead of warning and skipping, on qrels that name unknown queries or documents, and on
            queries with empty text.
        allow_empty: Accept a run that writes no negatives at all (by default it is an error that names the rule
            that dropped most candidates).
        query_batch_size: Queries mined at a time: retrieval, rules, scoring and sampling run a batch at a time,
            so memory follows the batch, not the query set; the output does not depend on it.
        resume: Keep each finished batch in the cache until the run completes, and continue from them when the
            same run (same inputs and settings) is started again after a crash; ``False`` starts over.
        engine: ``local`` (this process) or ``ray`` (a Ray cluster: encoding and query batches on an actor pool;
            the same output).
        ray_address: The Ray cluster to join: ``auto`` (``$RAY_ADDRESS``, else a cluster started here) or an
            address (``ray://host:10001``, ``host:6379``).
        workers: Ray actors (default: one per node, or one per ``gpus_per_worker`` GPUs).
        gpus_per_worker: GPUs per Ray actor (default: 1 when the cluster has GPUs, else 0).
        endpoint_concurrency: Requests in flight at once to a model behind an endpoint (``--model
            openai:MODEL@URL``).
        endpoint_retries: Tries after the first for a request that failed in a way worth trying again (429, 5xx,
            a timeout, a dropped connection, an answer that is not JSON).
        endpoint_timeout: Seconds to wait for an endpoint's answer.
        endpoint_max_requests: The request budget of the run: past it the run stops cleanly (exit 3), keeping
            what was answered in the cache; a rerun goes on from there. ``None``: no budget.
        endpoint_api_key_env: The environment variable holding the endpoints' API key (sent as a bearer token,
            never recorded).
    """

    corpus_id_column: Optional[str] = None
    corpus_text_column: Optional[str] = None
    corpus_title_column: Optional[str] = None
    query_id_column: Optional[str] = None
    query_text_column: Optional[str] = None
    qrels_query_column: Optional[str] = None
    qrels_doc_column: Optional[str] = None
    qrels_score_column: Optional[str] = None
    pairs_anchor_column: Optional[str] = None
    pairs_positive_column: Optional[str] = None

    retriever: str = "dense"
    model: Optional[str] = None
    query_prompt: Optional[str] = None
    corpus_prompt: Optional[str] = None
    query_prompt_name: Optional[str] = None
    corpus_prompt_name: Optional[str] = None
    batch_size: int = 64
    max_seq_length: Optional[int] = None
    device: str = "auto"
    precision: str = "auto"
    faiss_index: str = "Flat"
    fusion: str = "rrf"
    rrf_k: int = 60
    bm25_k1: float = 1.5
    bm25_b: float = 0.75
    bm25_method: str = "lucene"
    bm25_stemmer: str = "english"
    bm25_stopwords: str = "en"
    bm25_tokenizer: str = "auto"

    reranker: Optional[str] = None
    reranker_batch_size: int = 32
    reranker_max_length: Optional[int] = None
    absolute_margin: Optional[float] = _rule("absolute_margin")
    relative_margin: Union[float, str, None] = _rule("relative_margin")
    max_score: Optional[float] = _rule("max_score")
    min_score: Optional[float] = _rule("min_score")
    margin_reference: str = "min"
    max_positive_similarity: Optional[float] = _rule("max_positive_similarity")
    positive_proximity: Optional[float] = _rule("positive_proximity")
    lexical_overlap: Optional[float] = _rule("lexical_overlap")
    agreement: bool = _rule("agreement")
    cross_query: Optional[float] = _rule("cross_query")
    percentile_margin: Optional[float] = _rule("percentile_margin")
    percentile_floor: float = _rule("percentile_floor")
    percentile_cap: float = _rule("percentile_cap")
    score_all: bool = False

    range_min: int = 0
    range_max: int = 200
    num_negatives: int = 5
    sampling_strategy: str = "top"
    simans_a: float = SIMANS_A
    simans_b: float = SIMANS_B
    seed: int = 42
    difficulty_bands: Optional[int] = None
    promote_false_negatives: bool = False
    llm_judge: Optional[str] = None
    llm_confirm: Optional[str] = None
    llm_judge_prompt: Optional[str] = None

    output_format: str = "triplet"
    output_scores: bool = False
    prompt: Optional[str] = None
    columns: str = "all"
    train_batch_size: Optional[int] = None
    strict: bool = False
    allow_empty: bool = False
    query_batch_size: int = 1024
    resume: bool = True
    engine: str = "local"
    ray_address: str = "auto"
    workers: Optional[int] = None
    gpus_per_worker: Optional[float] = None
    endpoint_concurrency: int = 4
    endpoint_retries: int = 5
    endpoint_timeout: float = 60.0
    endpoint_max_requests: Optional[int] = None
    endpoint_api_key_env: str = "NEGMINE_API_KEY"

    def __post_init__(self) -> None:
        _choice("retriever", self.retriever, RETRIEVERS)
        _choice("bm25_method", self.bm25_method, BM25_METHODS)
        check_bm25_tokenizer(self.bm25_tokenizer)
        _choice("fusion", self.fusion, FUSIONS)
        _choice("margin_reference", self.margin_reference, MARGIN_REFERENCES)
        _choice("precision", self.precision, PRECISIONS)
        if not DEVICE.match(self.device):
            raise ConfigError(f"{flag('device')} must be auto, cpu, cuda, cuda:N, mps or xpu; got {self.device!r}")
        for rule in registry.RULES:  # each rule checks its own options
            for option in rule.options:
                option.check(getattr(self, option.name))
            if rule.check_config is not None:
                rule.check_config(self)
        if self.model == NO_MODEL:
            self._check_no_model()
        if self.bm25_tokenizer == "model" and (self.model or "").startswith("openai:"):
            raise ConfigError(f"{flag('bm25_tokenizer')} model reads a local model's tokenizer; {flag('model')} "
                              f"{self.model} is behind an endpoint: use {flag('bm25_tokenizer')} auto")
        if self.reranker_batch_size < 1:
            raise ConfigError(f"{flag('reranker_batch_size')} must be at least 1, got {self.reranker_batch_size}")
        if self.max_score is not None and self.min_score is not None and self.min_score > self.max_score:
            raise ConfigError(f"{flag('min_score')} ({self.min_score}) is above {flag('max_score')} "
                              f"({self.max_score}): every candidate would be dropped")
        if self.batch_size < 1:
            raise ConfigError(f"{flag('batch_size')} must be at least 1, got {self.batch_size}")
        if self.query_batch_size < 1:
            raise ConfigError(f"{flag('query_batch_size')} must be at least 1, got {self.query_batch_size}")
        _choice("engine", self.engine, ENGINES)
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"{flag('workers')} must be at least 1, got {self.workers}")
        for name in ("endpoint_concurrency", "endpoint_max_requests"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{flag(name)} must be at least 1, got {getattr(self, name)}")
        if self.endpoint_retries < 0 or not self.endpoint_timeout > 0:
            raise ConfigError(f"{flag('endpoint_retries')} must be >= 0 and {flag('endpoint_timeout')} > 0, got "
                              f"{self.endpoint_retries} and {self.endpoint_timeout}")
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise ConfigError(f"{flag('gpus_per_worker')} must be >= 0, got {self.gpus_per_worker}")
        if self.max_seq_length is not None and self.max_seq_length < 1:
            raise ConfigError(f"{flag('max_seq_length')} must be at least 1, got {self.max_seq_length}")
        if self.rrf_k < 0:
            raise ConfigError(f"{flag('rrf_k')} must be >= 0, got {self.rrf_k}")
        _choice("sampling_strategy", self.sampling_strategy, SAMPLING_STRATEGIES)
        if not math.isfinite(self.simans_a) or self.simans_a < 0:
            raise ConfigError(f"{flag('simans_a')} must be a number >= 0, got {self.simans_a}")
        if not math.isfinite(self.simans_b):
            raise ConfigError(f"{flag('simans_b')} must be a number, got {self.simans_b}")
        if self.difficulty_bands is not None and not 1 <= self.difficulty_bands <= self.range_max - self.range_min:
            raise ConfigError(f"{flag('difficulty_bands')} must be between 1 and the rank window's size "
                              f"({self.range_max - self.range_min}), got {self.difficulty_bands}")
        _choice("output_format", self.output_format, OUTPUT_FORMATS)
        _choice("columns", self.columns, COLUMN_SETS)
        if self.train_batch_size is not None:
            if self.train_batch_size < 2:
                raise ConfigError(f"{flag('train_batch_size')} must be at least 2 (a batch of one has no in-batch "
                                  f"negatives), got {self.train_batch_size}")
            if self.output_format not in BATCHED_LAYOUTS:
                raise ConfigError(f"{flag('train_batch_size')} composes the rows of {', '.join(BATCHED_LAYOUTS)} "
                                  f"layouts; {flag('output_format')} {self.output_format} rows are scored one pair "
                                  "at a time (no in-batch negatives)")
        if self.bm25_k1 < 0:
            raise ConfigError(f"{flag('bm25_k1')} must be >= 0, got {self.bm25_k1}")
        if not 0 <= self.bm25_b <= 1:
            raise ConfigError(f"{flag('bm25_b')} must be between 0 and 1, got {self.bm25_b}")
        if self.num_negatives < 1:
            raise ConfigError(f"{flag('num_negatives')} must be at least 1, got {self.num_negatives}")
        if self.range_min < 0:
            raise ConfigError(f"{flag('range_min')} must be >= 0, got {self.range_min}")
        if self.range_max <= self.range_min:
            raise ConfigError(
                f"{flag('range_max')} ({self.range_max}) must be greater than {flag('range_min')} ({self.range_min})"
            )
        window = self.range_max - self.range_min
        if self.num_negatives > window:
            raise ConfigError(
                f"{flag('num_negatives')} {self.num_negatives} is more than the rank window "
                f"{flag('range_min')} {self.range_min} .. {flag('range_max')} {self.range_max} holds ({window}); "
                f"raise {flag('range_max')} or lower {flag('num_negatives')}"
            )

    @property
    def relative_margin_value(self) -> Optional[float]:
        """The relative margin in force, ``auto`` resolved by whether ``--reranker`` names a judge."""
        return self.relative_margin_for(None)

    def relative_margin_for(self, judge_kind: Optional[str]) -> Optional[float]:
        """The relative margin in force when ``judge_kind`` (``self``, ``bi-encoder``, ``cross-encoder``) scores
        (``None``: decided by whether ``--reranker`` is given); see ``negmine.rules.relative_margin``."""
        return resolve_relative_margin(self.relative_margin, judge_kind, self.reranker)

    def for_judge(self, judge_kind: Optional[str]) -> "MineConfig":
        """These settings with ``relative_margin`` resolved for the judge (``auto`` made a number or ``None``): what
        the rules read."""
        return dataclasses.replace(self, relative_margin=self.relative_margin_for(judge_kind))

    def _check_no_model(self) -> None:
        """``--model none`` with options that need a bi-encoder (or, without a reranker, a judge)."""
        if self.retriever != "bm25":
            raise ConfigError(f"{flag('model')} none: {flag('retriever')} {self.retriever} retrieves with the "
                              f"bi-encoder; use {flag('retriever')} bm25, or name a model")
        if self.reranker is not None:
            return
        judged = [name for name in ("absolute_margin", "max_score", "min_score", "percentile_margin")
                  if getattr(self, name) is not None]
        judged += ["relative_margin"] if self.relative_margin not in (None, "auto") else []
        judged += ["percentile_cap"] if self.percentile_cap < 1 else []
        judged += ["score_all"] if self.score_all else []
        judged += ["sampling_strategy"] if self.sampling_strategy == "simans" else []
        if judged:
            raise ConfigError(f"{flag('model')} none: {flag(judged[0])} reads a judge's scores, and without a model "
                              f"only {flag('reranker')} can judge; give one, or turn {flag(judged[0])} off")

    def for_run(self) -> "MineConfig":
        """The settings a run uses: these, with ``--model none`` the rules that read the bi-encoder off."""
        return self.replace(**BI_ENCODER_RULES) if self.model == NO_MODEL else self

    def ineffective(self, given: Collection[str]) -> list[str]:
        """Warnings for options in ``given`` (set explicitly by the caller) that have no effect with the others."""
        margins = any(v is not None for v in (self.absolute_margin, self.relative_margin_value,
                                              self.percentile_margin))
        checks = [
            ("seed", self.sampling_strategy == "top", f"with {flag('sampling_strategy')} top"),
            ("simans_a", self.sampling_strategy != "simans", f"with {flag('sampling_strategy')} "
             f"{self.sampling_strategy}"),
            ("simans_b", self.sampling_strategy != "simans", f"with {flag('sampling_strategy')} "
             f"{self.sampling_strategy}"),
            ("difficulty_bands", self.columns == "training", f"with {flag('columns')} training (no band column)"),
            ("fusion", self.retriever != "hybrid", f"with {flag('retriever')} {self.retriever}"),
            ("rrf_k", self.retriever != "hybrid" or self.fusion != "rrf",
             f"with {flag('retriever')} {self.retriever}" if self.retriever != "hybrid" else f"with {flag('fusion')} "
             f"{self.fusion}"),
            ("faiss_index", self.retriever == "bm25", f"with {flag('retriever')} bm25"),
            ("reranker_batch_size", self.reranker is None, f"without {flag('reranker')}"),
            ("reranker_max_length", self.reranker is None, f"without {flag('reranker')}"),
            ("margin_reference", not margins, "without a margin"),
            ("output_scores", self.columns == "training" and self.output_format != "flagembedding",
             f"with {flag('columns')} training (no score columns)"),
            ("prompt", self.prompt is not None and self.output_format != "flagembedding",
             f"with {flag('output_format')} {self.output_format} (it fills FlagEmbedding's prompt column)"),
            ("percentile_floor", self.percentile_margin is None, f"without {flag('percentile_margin')}"),
            ("ray_address", self.engine != "ray", f"without {flag('engine')} ray"),
            ("workers", self.engine != "ray", f"without {flag('engine')} ray"),
            ("gpus_per_worker", self.engine != "ray", f"without {flag('engine')} ray"),
            *((name, self.model == NO_MODEL, f"with {flag('model')} none (it reads the bi-encoder's cosines)")
              for name in BI_ENCODER_RULES),
        ]
        no_bm25 = self.retriever == "dense" and self.lexical_overlap is None and not self.agreement
        checks += [(f"bm25_{p}", no_bm25, f"with {flag('retriever')} dense and the BM25 rules off "
                    f"({flag('lexical_overlap')} none, --no-agreement)")
                   for p in ("k1", "b", "method", "stemmer", "stopwords")]
        model_tokens = self.bm25_tokenizer == "model" and not no_bm25
        checks += [(f"bm25_{p}", model_tokens, f"with {flag('bm25_tokenizer')} model (its sub-word tokens are neither "
                    "stemmed nor filtered)") for p in ("stemmer", "stopwords")]
        return [f"{flag(name)} has no effect {why}" for name, useless, why in checks if name in given and useless]

    def replace(self, **changes: Any) -> "MineConfig":
        """A copy with some fields changed (validated again)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown option(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self, provenance: bool = False) -> dict[str, Any]:
        """The settings as a plain dict; with ``provenance``, without RUN_ONLY (how a run is carried out, not what
        it produces), so that outputs are byte-identical whatever those are."""
        out = dataclasses.asdict(self)
        if provenance:
            for name in RUN_ONLY:
                out.pop(name, None)
            for name, value in SINCE_GOLDEN.items():
                if out.get(name) == value:
                    out.pop(name)
        return out


def check_bm25_tokenizer(spec: str) -> None:
    """Raise a ConfigError unless ``spec`` names a BM25 tokenizer."""
    if spec not in ("auto", "words", "model") and not _NGRAMS.match(spec):
        raise ConfigError(f"{flag('bm25_tokenizer')} must be auto, words, model, ngrams or ngrams:N (N from 1 to 9); "
                          f"got {spec!r}")


def ngram_length(spec: str) -> Optional[int]:
    """N of ``ngrams:N`` (2 for ``ngrams``); None for the other tokenizers."""
    found = _NGRAMS.match(spec)
    return int(found.group(1) or 2) if found else None


def _choice(field: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{flag(field)} must be one of {', '.join(choices)}; got {value!r}")
