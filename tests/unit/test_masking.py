"""Masking without Ray: classification of column names, the policies on real decoded batches (hash
and tokenize against an HMAC-SHA256 reference, nulls, types, range bounds), per-destination rules,
typed errors for what cannot be masked, and a key that never shows."""

from __future__ import annotations

import hashlib
import hmac
import json
import pickle
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from pydantic import ValidationError

from ray_cdc.actors.transformer import TransformerFactory
from ray_cdc.commitlog.arrow_batches import arrow_batches
from ray_cdc.commitlog.builder import MutationBuilder
from ray_cdc.commitlog.position import CommitLogPosition
from ray_cdc.commitlog.reader import ChangeSet, DecodedMutation
from ray_cdc.config.loader import load_config
from ray_cdc.config.masking import MaskingConfig
from ray_cdc.errors import ConfigError, RayCdcError
from ray_cdc.pipeline.run import transform_settings
from ray_cdc.schema.model import ColumnKind, ColumnSchema, TableSchema
from ray_cdc.schema.types import parse_cql_type
from ray_cdc.transforms import Masker, MaskingError, Transformer, TransformSettings
from ray_cdc.transforms.classify import Classifier, name_words
from ray_cdc.transforms.masking import check_destinations, mask_values
from ray_cdc.transforms.masking_key import MaskingKey, MaskingKeyError, load_key

SECRET = "s3cret-masking-key-value"
t = parse_cql_type


def table(name: str, *columns: tuple[str, str, ColumnKind]) -> TableSchema:
    return TableSchema("clinic", name, uuid.uuid5(uuid.NAMESPACE_OID, name),
                       tuple(ColumnSchema(n, t(ty), kind) for n, ty, kind in columns))


PK, CK, REG = ColumnKind.PARTITION_KEY, ColumnKind.CLUSTERING, ColumnKind.REGULAR
VISITS = table("visits", ("patient_id", "int", PK), ("email", "text", CK), ("diagnosis", "text", REG),
               ("prescription_address", "text", REG), ("notes", "text", REG), ("visit_uuid", "uuid", REG),
               ("phone_numbers", "set<text>", REG))
PATIENTS = table("patients", ("patient_id", "text", PK), ("name", "text", REG))


# phone_numbers (a non-frozen set) can only be kept; the first rule wins, so tests' rules come after
KEEP_SET = {"clinic.visits.phone_numbers": "keep"}


def config(**extra) -> MaskingConfig:
    return MaskingConfig(key_env="RAY_CDC_TEST_MASKING_KEY", **{**extra, "rules": {**KEEP_SET, **extra.get("rules", {})}})


@pytest.fixture(autouse=True)
def masking_key(monkeypatch):
    monkeypatch.setenv("RAY_CDC_TEST_MASKING_KEY", SECRET)


def reference(purpose: bytes, value: str) -> bytes:
    """HMAC-SHA256 under the key derived for `purpose`, as the module doc of masking_key describes."""
    derived = hmac.new(SECRET.encode(), purpose, hashlib.sha256).digest()
    return hmac.new(derived, value.encode(), hashlib.sha256).digest()


def batch_of(schema: TableSchema, *steps) -> pa.RecordBatch:
    decoded = []
    for i, (pk, step) in enumerate(steps):
        builder = MutationBuilder(schema, {"patient_id": pk})
        step(builder)
        decoded.append(DecodedMutation(CommitLogPosition(7, 100 + i), builder.mutation()))
    return pa.Table.from_batches([b for _, b in arrow_batches(decoded)]).combine_chunks().to_batches()[0]


# --- classification ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("column", "policy"), [
    ("email", "hash"), ("contactEmail", "hash"), ("home_address", "hash"), ("ip_address", "hash"),
    ("ssn", "hash"), ("credit_card_number", "hash"), ("phone", "hash"),
    ("patient_id", "tokenize"), ("patientId", "tokenize"), ("diagnosis", "tokenize"),
    ("medical_record_no", "tokenize"), ("prescription", "tokenize"),
    ("prescription_address", "tokenize"),  # PII and PHI: PHI wins
    ("classname", "keep"), ("notes", "keep"), ("lessons", "keep"), ("id", "keep"),
])
def test_names_are_classified_by_the_default_patterns(column, policy):
    assert Classifier.from_config(config()).classify(column) == policy


def test_name_words_split_camel_case_and_separators():
    assert name_words("patientId") == name_words("patient_id") == name_words("Patient-ID") == "patient id"


def test_rules_override_patterns_first_match_and_destination_rules_first():
    classifier = Classifier.from_config(config(
        rules={"clinic.visits.email": "keep", "clinic.*.notes": "redact", "clinic.*.*": "hash"},
        destinations={"pg": {"enabled": False}, "ch": {"rules": {"clinic.visits.notes": "tokenize"}}}))
    assert classifier.policy("ch", "clinic", "visits", "email") == "keep"  # explicit beats the pattern
    assert classifier.policy("ch", "clinic", "visits", "notes") == "tokenize"  # destination rule first
    assert classifier.policy("other", "clinic", "visits", "notes") == "redact"
    assert classifier.policy("other", "clinic", "visits", "anything") == "hash"  # a table-wide rule
    assert classifier.policy("other", "shop", "orders", "total") == "keep"  # no rule, no pattern
    assert classifier.policy("pg", "clinic", "visits", "diagnosis") == "keep"  # masking off for pg


# --- policies on batches ----------------------------------------------------------------------------


def visits_batch() -> pa.RecordBatch:
    v1, v2 = uuid.UUID(int=1), uuid.UUID(int=2)
    return batch_of(VISITS,
                    (42, lambda m: m.insert({"email": "a@x.org"}, {"diagnosis": "flu", "notes": "n1",
                                                                   "visit_uuid": v1}, timestamp=1)),
                    (42, lambda m: m.insert({"email": "b@x.org"}, {"diagnosis": None, "notes": "n2",
                                                                   "visit_uuid": v2}, timestamp=2)),
                    (7, lambda m: m.update({"email": "a@x.org"}, {"notes": "n3"}, timestamp=3)))


def masked_visits(**extra):
    masker = Masker.from_config(config(**extra))
    return masker(visits_batch(), VISITS, "ch")


def test_hash_and_tokenize_match_the_hmac_reference_and_nulls_stay_null():
    _, batch = masked_visits(rules={"clinic.visits.visit_uuid": "hash"})
    assert batch.num_rows == 3
    assert batch.column("email").to_pylist() == [reference(b"ray_cdc masking: hash", v).hex()
                                                  for v in ("a@x.org", "b@x.org", "a@x.org")]
    assert batch.column("diagnosis").to_pylist() == [
        "tok_" + reference(b"ray_cdc masking: tokenize", "flu")[:12].hex(), None, None]
    assert batch.column("patient_id").to_pylist() == [
        "tok_" + reference(b"ray_cdc masking: tokenize", v)[:12].hex() for v in ("42", "42", "7")]
    # a uuid is hashed in its text form, as a text column holding it would be
    assert batch.column("visit_uuid").to_pylist()[0] == reference(b"ray_cdc masking: hash", str(uuid.UUID(int=1))).hex()
    assert batch.column("notes").to_pylist() == ["n1", "n2", "n3"]  # no pattern, no rule: kept
    assert batch.column("_position").to_pylist() == visits_batch().column("_position").to_pylist()


def test_masked_columns_become_text_in_the_schema_the_destination_sees():
    schema, batch = masked_visits(rules={"clinic.visits.notes": "redact"})
    types = {c.name: c.type.cql() for c in schema.columns}
    assert types["patient_id"] == "text" and types["email"] == "text" and types["diagnosis"] == "text"
    assert batch.schema.field("patient_id").type == pa.string()
    assert types["notes"] == "text" and batch.column("notes").null_count == 3  # redact: NULL, same type
    assert schema.id == VISITS.id and schema.partition_key[0].name == "patient_id"
    assert VISITS.column("patient_id").type.cql() == "int"  # the source schema is untouched


def test_tokens_join_across_tables_and_column_types():
    masker = Masker.from_config(config())
    visits = masker(visits_batch(), VISITS, "ch")[1].column("patient_id").to_pylist()
    patients = batch_of(PATIENTS, ("42", lambda m: m.insert({}, {"name": "Ann"}, timestamp=1)))
    tokens = masker(patients, PATIENTS, "ch")[1].column("patient_id").to_pylist()
    assert tokens[0] == visits[0]  # int 42 in visits, text '42' in patients: the same token


def test_a_clear_destination_sees_the_batch_unchanged():
    masker = Masker.from_config(config(destinations={"pg": {"enabled": False}}))
    schema, batch = masker(visits_batch(), VISITS, "pg")
    assert schema is VISITS and batch.equals(visits_batch())


def test_a_different_key_gives_different_values():
    one = mask_values(pa.array(["a@x.org"]), "hash", MaskingKey(b"one"), "text")
    two = mask_values(pa.array(["a@x.org"]), "hash", MaskingKey(b"two"), "text")
    assert one.to_pylist() != two.to_pylist()


def test_only_distinct_values_are_hashed():
    calls = []

    class CountingKey(MaskingKey):
        def hash_hex(self, value: bytes) -> str:
            calls.append(value)
            return super().hash_hex(value)

    values = pa.array(["a", "b", None, "a"] * 1000)
    masked = mask_values(values, "hash", CountingKey(b"k"), "text")
    assert sorted(calls) == [b"a", b"b"]
    assert masked.null_count == 1000 and masked[0] == masked[3]


def test_range_delete_bounds_of_a_masked_clustering_column_are_masked():
    batch = batch_of(VISITS, (42, lambda m: m.delete_range({"email": "a@x.org"}, {"email": "c@x.org"},
                                                           timestamp=5)))
    _, masked = Masker.from_config(config())(batch, VISITS, "ch")
    bounds = masked.column("_range").to_pylist()[0]
    assert bounds["start"]["email"] == reference(b"ray_cdc masking: hash", "a@x.org").hex()
    assert bounds["end"]["email"] == reference(b"ray_cdc masking: hash", "c@x.org").hex()
    assert "a@x.org" not in str(masked.to_pylist())


# --- what cannot be masked: typed errors naming destination, table and column ------------------------


def test_a_non_frozen_collection_cannot_be_masked():
    with pytest.raises(MaskingError, match=r"ch: clinic\.visits\.phone_numbers: hash cannot apply"):
        Masker.from_config(MaskingConfig(key_env="RAY_CDC_TEST_MASKING_KEY"))(visits_batch(), VISITS, "ch")


def test_redact_refused_on_a_key_column():
    with pytest.raises(MaskingError, match=r"clinic\.visits\.email: redact cannot apply to a primary key"):
        Masker.from_config(config(rules={"clinic.visits.email": "redact"}))(visits_batch(), VISITS, "ch")


def test_masking_for_an_unknown_destination_is_an_error():
    with pytest.raises(MaskingError, match="masking.destinations: warehouse not among"):
        check_destinations(config(destinations={"warehouse": {"enabled": False}}), ["pg", "ch"])


# --- the key -----------------------------------------------------------------------------------------


def test_a_missing_key_is_a_config_error_naming_the_source(monkeypatch):
    monkeypatch.delenv("RAY_CDC_TEST_MASKING_KEY")
    with pytest.raises(ValidationError, match="RAY_CDC_TEST_MASKING_KEY"):
        config()
    cfg = MaskingConfig.model_construct(key_env="RAY_CDC_TEST_MASKING_KEY", key_file=None)
    with pytest.raises(MaskingKeyError, match="RAY_CDC_TEST_MASKING_KEY is not set") as error:
        load_key(cfg)  # where the pipeline loads it (an actor's process)
    assert isinstance(error.value, ConfigError) and isinstance(error.value, RayCdcError)


def test_key_file_and_exactly_one_source(tmp_path):
    key_file = tmp_path / "masking.key"
    key_file.write_text(SECRET + "\n")
    from_file = load_key(MaskingConfig(key_file=key_file))
    from_env = load_key(config())
    assert from_file.hash_hex(b"x") == from_env.hash_hex(b"x")  # the trailing newline is not the key
    (tmp_path / "empty.key").write_text("")
    with pytest.raises(ValidationError, match="empty"):
        MaskingConfig(key_file=tmp_path / "empty.key")
    with pytest.raises(ValidationError, match="exactly one of key_env, key_file"):
        MaskingConfig(key_env="RAY_CDC_TEST_MASKING_KEY", key_file=key_file)
    with pytest.raises(ValidationError, match="exactly one of key_env, key_file"):
        MaskingConfig()


def test_the_key_never_shows():
    masker = Masker.from_config(config())
    assert SECRET not in repr(masker) and SECRET not in str(masker.key) and SECRET not in repr(masker.key)
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(masker.key)
    settings = TransformSettings(masking=config())
    assert SECRET.encode() not in pickle.dumps(settings)  # what travels to the actors: the source only


def test_config_rejects_unknown_keys_and_bad_patterns():
    with pytest.raises(ValidationError, match="extra"):
        config(hash_everything=True)
    with pytest.raises(ValidationError, match="not a regular expression"):
        config(pii_patterns=["(unclosed"])
    with pytest.raises(ValidationError, match="rules"):
        config(rules={"clinic.visits": "hash"})  # needs keyspace.table.column
    with pytest.raises(ValidationError, match="destinations"):
        config(destinations={"pg": {"enabled": False, "mask": "all"}})


# --- through the Transformer -------------------------------------------------------------------------


class RecordingPrepare:
    def __init__(self):
        self.seen = []

    def prepare(self, table, batch):
        self.seen.append((table.column("patient_id").type.cql(), batch.column("patient_id").type))
        return "prepared"


def test_transformer_masks_per_destination_and_prepares_the_masked_schema():
    settings = TransformSettings(masking=config(destinations={"pg": {"enabled": False}}))
    preparer = RecordingPrepare()
    transformer = Transformer(settings, mask=settings.mask(["pg", "ch"]), preparers={"ch": preparer})
    change_set = ChangeSet(7, CommitLogPosition(7, 103), [(VISITS, visits_batch())], completed=True)
    common = transformer.common(change_set)
    for_ch = transformer.for_destination(common, "ch")
    for_pg = transformer.for_destination(common, "pg")
    assert preparer.seen == [("text", pa.string())]
    assert "a@x.org" not in str(for_ch.items[0].batch.to_pylist())
    assert for_pg.items[0].batch.column("email").to_pylist() == ["a@x.org", "b@x.org", "a@x.org"]


def test_a_destination_set_leaves_out_only_the_batches_it_shares_with_the_common_set():
    # what crosses from the transform actor to a writer: a masked batch is the destination's own
    # and travels; a clear one is the common set's and is left out, then put back from it
    settings = TransformSettings(masking=config(destinations={"pg": {"enabled": False}}))
    transformer = Transformer(settings, mask=settings.mask(["pg", "ch"]))
    change_set = ChangeSet(7, CommitLogPosition(7, 103), [(VISITS, visits_batch())], completed=True)
    common = transformer.common(change_set)
    for_ch = transformer.for_destination(common, "ch")
    for_pg = transformer.for_destination(common, "pg")
    ch_part, pg_part = for_ch.without_batches_of(common), for_pg.without_batches_of(common)
    assert ch_part.items[0].batch is for_ch.items[0].batch  # masked: its own
    assert pg_part.items[0].batch is None and pg_part.items[0].table is for_pg.items[0].table
    assert (pg_part.end, pg_part.completed, pg_part.input_rows) == (common.end, True, common.input_rows)
    for part, whole in ((ch_part, for_ch), (pg_part, for_pg)):
        back = part.with_batches_of(common)
        assert [i.batch.to_pylist() for i in back.items] == [i.batch.to_pylist() for i in whole.items]
        assert back.rows == whole.rows
    assert "a@x.org" not in str(pickle.dumps(ch_part))
    assert len(pickle.dumps(pg_part)) < len(pickle.dumps(for_pg)) / 2


def test_masking_only_stage_masks_without_coalescing_or_preparing():
    settings = TransformSettings.masking_only(config())
    preparer = RecordingPrepare()
    transformer = Transformer(settings, mask=settings.mask(), preparers={"ch": preparer})
    change_set = ChangeSet(7, CommitLogPosition(7, 103), [(VISITS, visits_batch())], completed=True)
    out = transformer.for_destination(transformer.common(change_set), "ch")
    assert out.rows == 3 and out.items[0].prepared is None and preparer.seen == []
    assert out.items[0].table.column("email").type.cql() == "text"


# --- from the config file ---------------------------------------------------------------------------


def config_file(tmp_path, masking: str, pipeline: str = "{}") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("sources: [{name: a, commitlog_dir: d}]\nschema: {from_log: true}\n"
                    "destinations:\n  pg: {type: postgres, dsn: 'postgresql://u:pw@h/db'}\n"
                    "  ch: {type: clickhouse, dsn: 'chdb://ch'}\n"
                    f"pipeline: {pipeline}\nmasking: {masking}\n")
    return path


def test_config_file_masking_reaches_the_transform_stage(tmp_path):
    config = load_config(config_file(tmp_path, "{key_env: RAY_CDC_TEST_MASKING_KEY, destinations: {pg: {enabled: false}}}"))
    assert transform_settings(config).masking == config.masking
    off = load_config(config_file(tmp_path, "{key_env: RAY_CDC_TEST_MASKING_KEY}", "{transform_stage: false}"))
    assert transform_settings(off) == TransformSettings.masking_only(off.masking)  # masking still runs
    assert SECRET not in json.dumps(config.redacted_dict())


def test_config_file_errors_name_the_key_and_never_the_value(tmp_path, monkeypatch):
    typo = config_file(tmp_path, "{key_env: RAY_CDC_TEST_MASKING_KEY, destinations: {pgg: {enabled: false}}}")
    with pytest.raises(MaskingError, match="pgg not among the destinations"):
        transform_settings(load_config(typo))
    monkeypatch.delenv("RAY_CDC_TEST_MASKING_KEY")
    with pytest.raises(ConfigError, match=r"masking.*RAY_CDC_TEST_MASKING_KEY") as error:
        load_config(config_file(tmp_path, "{key_env: RAY_CDC_TEST_MASKING_KEY}"))
    assert SECRET not in str(error.value)
    with pytest.raises(ConfigError, match=r"masking\.pii_policy"):
        load_config(config_file(tmp_path, "{key_file: k, pii_policy: encrypt}"))


def test_transformer_factory_builds_the_masker_where_it_runs():
    masking = config(destinations={"pg": {"enabled": False}})
    # the snapshot readers' factory: masking only, no destination factories (names checked by `run`)
    transformer = TransformerFactory(TransformSettings.masking_only(masking))()
    change_set = ChangeSet(7, CommitLogPosition(7, 103), [(VISITS, visits_batch())], completed=True)
    out = transformer.for_destination(transformer.common(change_set), "ch")
    assert "a@x.org" not in str(out.items[0].batch.to_pylist())
    with pytest.raises(MaskingError, match="pg not among the destinations"):
        TransformerFactory(TransformSettings(masking=masking), {"ch": lambda: None})()


def _copy_bytes(prepared) -> dict:
    """Every stage's COPY payload (the direct path's too), as bytes."""
    out = {}
    for key, stage in prepared.staged.stages().items():
        stage.materialize()
        out[key] = b"".join(bytes(c) for c in stage.payload.chunks(0, len(stage.payload)))
        if stage.direct is not None:
            out[key + ":direct"] = b"".join(bytes(c) for c in stage.direct.payload.chunks(0, len(stage.direct.payload)))
    return out


def test_a_timescaledb_destination_takes_the_postgresql_preparation_of_the_same_rows():
    """PostgreSQL and TimescaleDB load the same COPY payloads into differently named tables: the rows
    are prepared once, and what the second one gets is what its own `prepare` makes."""
    from ray_cdc.destinations.postgres import PostgresDestination
    from ray_cdc.destinations.timescaledb import TimescaleDbDestination

    pg = PostgresDestination("postgresql://nowhere/db", name="pg", schema="bpg")  # never opened
    ts = TimescaleDbDestination("postgresql://nowhere/db", name="ts", schema="bts")
    calls = []

    class Counting:
        def __init__(self, destination):
            self.destination = destination

        def prepare(self, table, batch):
            calls.append(self.destination.name)
            return self.destination.prepare(table, batch)

        def prepare_from(self, other, table):
            return self.destination.prepare_from(other, table)

    transformer = Transformer(TransformSettings(), preparers={"pg": Counting(pg), "ts": Counting(ts)})
    change_set = ChangeSet(7, CommitLogPosition(7, 103), [(VISITS, visits_batch())], completed=True)
    common = transformer.common(change_set)
    parts = transformer.for_destinations(common, ["pg", "ts"])
    assert calls == ["pg"]
    pg_prepared, ts_prepared = parts["pg"].items[0].prepared, parts["ts"].items[0].prepared
    assert (pg_prepared.names.schema, ts_prepared.names.schema) == ("bpg", "bts")
    assert ts_prepared.staged is pg_prepared.staged
    own = ts.prepare(parts["ts"].items[0].table, parts["ts"].items[0].batch)
    assert own.names == ts_prepared.names and (own.rows, own.events) == (ts_prepared.rows, ts_prepared.events)
    assert _copy_bytes(own) == _copy_bytes(ts_prepared)


def test_a_destination_with_its_own_masking_prepares_its_own_rows():
    from ray_cdc.destinations.postgres import PostgresDestination

    settings = TransformSettings(masking=config(destinations={"pg": {"enabled": False}}))
    pg = PostgresDestination("postgresql://nowhere/db", name="pg", schema="bpg")
    other = PostgresDestination("postgresql://nowhere/db", name="masked", schema="masked")
    transformer = Transformer(settings, mask=settings.mask(["pg", "masked"]), preparers={"pg": pg, "masked": other})
    change_set = ChangeSet(7, CommitLogPosition(7, 103), [(VISITS, visits_batch())], completed=True)
    parts = transformer.for_destinations(transformer.common(change_set), ["pg", "masked"])
    pg_prepared, masked = parts["pg"].items[0].prepared, parts["masked"].items[0].prepared
    assert masked.staged is not pg_prepared.staged
    assert "a@x.org" not in str(parts["masked"].items[0].batch.to_pylist())
    assert _copy_bytes(masked) != _copy_bytes(pg_prepared)
