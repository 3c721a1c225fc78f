"""Inputs: the formats negmine reads (Parquet, JSON Lines, CSV, TSV, BEIR folders), column detection and the
checks of ids, texts and scores, the corpus / queries / qrels types, and vectors given by the user."""
