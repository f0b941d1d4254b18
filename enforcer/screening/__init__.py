"""Restricted-party screening against the US Consolidated Screening List (CSL).

``csl`` parses the list as trade.gov publishes it (JSON or CSV), ``normalise`` turns names into
comparable keys (transliteration, company suffixes), ``store`` keeps the loaded list under the
state directory, ``match`` screens names with rapidfuzz.
"""
