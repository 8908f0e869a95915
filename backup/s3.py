"""Off-site copies in S3-compatible storage (AWS S3, MinIO, Ceph, ...): each backup under <prefix><name>/,
its manifest uploaded last, so a backup with a manifest there is complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from backup.manifest import MANIFEST, BackupError
from settings import Settings


class RemoteStore:
    def __init__(self, settings: Settings) -> None:
        if not settings.backup_s3_bucket:
            raise BackupError("no S3 bucket configured (OMS_BACKUP_S3_BUCKET)")
        self.bucket = settings.backup_s3_bucket
        self.prefix = settings.backup_s3_prefix
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=settings.backup_s3_endpoint_url or None,
            region_name=settings.backup_s3_region,
            aws_access_key_id=settings.backup_s3_access_key_id or None,
            aws_secret_access_key=settings.backup_s3_secret_access_key or None,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60),
        )

    def where(self, name: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}"

    def upload(self, folder: Path, files: list[str]) -> None:
        for file in [*files, MANIFEST]:
            self._call("upload", self.client.upload_file, str(folder / file), self.bucket, self._key(folder.name, file))

    def names(self) -> set[str]:
        """The backups there, by their manifests."""
        found: set[str] = set()
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    name, _, file = item["Key"][len(self.prefix) :].partition("/")
                    if file == MANIFEST:
                        found.add(name)
        except (BotoCoreError, ClientError) as error:
            raise BackupError(f"cannot list {self.where()}: {error}") from None
        return found

    def download(self, name: str, folder: Path) -> None:
        """The backup's files into `folder`, its manifest last."""
        if name not in self.names():
            raise BackupError(f"no backup {name} in {self.where()}")
        folder.mkdir(parents=True, exist_ok=True)
        paginator = self.client.get_paginator("list_objects_v2")
        keys = [
            item["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{name}/")
            for item in page.get("Contents", [])
        ]
        keys.sort(key=lambda key: key.endswith(f"/{MANIFEST}"))
        for key in keys:
            self._call("download", self.client.download_file, self.bucket, key, str(folder / key.rsplit("/", 1)[1]))

    def delete(self, name: str) -> None:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{name}/"):
            objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            # The manifest first: a half-deleted backup must not look complete.
            objects.sort(key=lambda item: not item["Key"].endswith(f"/{MANIFEST}"))
            for item in objects:
                self._call("delete", self.client.delete_object, Bucket=self.bucket, Key=item["Key"])

    def _key(self, name: str, file: str) -> str:
        return f"{self.prefix}{name}/{file}"

    def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> None:
        try:
            method(*args, **kwargs)
        except (BotoCoreError, ClientError) as error:
            raise BackupError(f"S3 {what} failed at {self.where()}: {error}") from None
