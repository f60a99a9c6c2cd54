"""tahub's partner-side connector: the library behind the ``tahub-connect`` command.

A partner's export goes one way, and nothing identifying leaves the partner's machine::

    export (CSV, Parquet, Excel, SQLite, SQL)      connectors.partner.sources, .csvsource
      + mapping file (YAML, typed parsers)         connectors.partner.mapping, .fieldmapping
      -> prepare_extract()                         connectors.partner.pipeline
           parse each field (dates, numbers, units, codes)       connectors.partner.convert
           -> validate (hub.contracts.validation, the hub's own checks)  .checking
           -> normalise + pseudonymise identifiers connectors.partner.pseudonymise (NetworkKey)
           -> zstd Parquet extract + rejects CSV   connectors.partner.extract, .rejects
      -> HubClient.upload()                        connectors.partner.client (resumable)

    check_export() shows how a mapping reads an export, writes nothing (``check``);
    suggest_mapping() proposes a mapping from a sample (``mapping suggest``).

A member analyst queries everyone's pooled data, differentially private::

    AnalystClient.query() -> QueryResult           connectors.analyst.client, .result
      .top(): an honest top list (rank order, or the interval's lower end; noise-only
      cells left out); .to_pandas() / .to_arrow(): value, 95% interval and whether it
      excludes zero per cell, ranks; cost, budget left

A governance officer reviews policy changes (four eyes), budgets and the audit log::

    GovernanceClient.propose() / approve() / reject() / export_policies()
                                                   connectors.governance.client

The clients share one session (OAuth2 client credentials, retries, error translation):
connectors.common.session.

Typical use::

    from pathlib import Path
    from connectors import HubClient, load_mapping, load_network_key, prepare_extract

    mapping = load_mapping(Path("alerts.mapping.yaml"))
    prepared = prepare_extract(
        Path("alerts.csv"), mapping, key=load_network_key(), out_path=Path("alerts.parquet")
    )
    with HubClient.from_env() as hub:
        hub.upload(prepared.path, dataset=prepared.dataset,
                   contract_version=prepared.contract_version, sha256=prepared.sha256)

Errors are the hub's one tree (``hub.errors``)::

    TahubError
    ├── ConfigError
    │   └── MappingError        the mapping file is wrong for its contract (with lines)
    ├── AuthError               the hub refused the client credentials
    ├── InvalidInput
    │   ├── SourceError         the export cannot be read (empty, an unclosed quote, column...)
    │   ├── ExtractInvalid      too many rows rejected, or implausible magnitudes: no extract
    │   └── EmptyExtract        the export has no data rows
    ├── Conflict                an upload could not settle on an offset
    ├── Unavailable             the hub cannot be reached, after retries
    └── HubRequestError         the hub refused a request; what it said is kept as said:
        │                       status (403, 404...), problem_code, problem_type, rule,
        │                       field, hub_detail, retry_after, problem_body
        └── HubUnavailable      it answered 5xx, after the retries (also an Unavailable)
"""

from connectors.analyst.client import AnalystClient
from connectors.analyst.result import (
    Bounding,
    BudgetBalance,
    Cell,
    KeySelection,
    MeasureInfo,
    PrivacyCost,
    PublishedRelease,
    QueryEstimate,
    QueryRecord,
    QueryResult,
    Rank,
    Ranking,
    ResultRow,
    Route,
)
from connectors.governance.client import GovernanceClient
from connectors.partner.client import (
    BytesProgress,
    ExtractInfo,
    HubClient,
    RetryPolicy,
    UploadOutcome,
    UploadState,
)
from connectors.partner.extract import (
    ExtractFile,
    connector_schema,
    read_extract_metadata,
    write_extract,
)
from connectors.partner.mapping import (
    FieldMapping,
    Mapping,
    SourceOptions,
    load_mapping,
    parse_mapping,
)
from connectors.partner.pipeline import ProgressHook, prepare_extract
from connectors.partner.preview import CheckReport, FieldPreview, check_export
from connectors.partner.pseudonymise import (
    InvalidIdentifier,
    NetworkKey,
    Pseudonymiser,
    load_network_key,
    normalise,
)
from connectors.partner.report import DroppedColumn, PreparedExtract, ReasonCount
from connectors.partner.suggest import suggest_mapping
from connectors.partner.template import mapping_template
from hub import __version__

__all__ = [
    "AnalystClient",
    "Bounding",
    "BudgetBalance",
    "BytesProgress",
    "Cell",
    "CheckReport",
    "DroppedColumn",
    "ExtractFile",
    "ExtractInfo",
    "FieldMapping",
    "FieldPreview",
    "GovernanceClient",
    "HubClient",
    "InvalidIdentifier",
    "KeySelection",
    "Mapping",
    "MeasureInfo",
    "NetworkKey",
    "PreparedExtract",
    "PrivacyCost",
    "ProgressHook",
    "Pseudonymiser",
    "PublishedRelease",
    "QueryEstimate",
    "QueryRecord",
    "QueryResult",
    "Rank",
    "Ranking",
    "ReasonCount",
    "ResultRow",
    "RetryPolicy",
    "Route",
    "SourceOptions",
    "UploadOutcome",
    "UploadState",
    "__version__",
    "check_export",
    "connector_schema",
    "load_mapping",
    "load_network_key",
    "mapping_template",
    "normalise",
    "parse_mapping",
    "prepare_extract",
    "read_extract_metadata",
    "suggest_mapping",
    "write_extract",
]
