"""Storage: where the hub keeps bytes (objects) and facts (the metadata database).

::

    hub.storage.objects       the ObjectStore protocol, local folder, in-memory, open_store
    hub.storage.s3            S3Store: S3/MinIO via minio, sha256 metadata, SSE, multipart
    hub.storage.objectkeys    the rules of object keys (relative, safe segments)
    hub.storage.folders       folder objects: an extract as Parquet parts + _common_metadata
    hub.storage.locks         advisory file locks between processes sharing a folder
    hub.storage.extractcache  local copies of committed extracts for queries (LRU)
    hub.storage.db            metadata tables (SQLAlchemy), the write-transaction helper,
                              Alembic migrations (hub/storage/migrations)
    hub.storage.ratebuckets   token buckets in the metadata store, shared by every hub
                              process (the crowd-report limit per address)

May import: hub.errors, hub.settings
"""
