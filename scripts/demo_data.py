"""Sample data for scripts/demo: create it, change it, compare a restore with it.

Talks to the emulator named by AWS_ENDPOINT_URL (boto3 comes with moto).
"""
import hashlib
import os
import pathlib
import random
import sys

import boto3

BUCKET = "lifeboat-demo-data"
PREFIX = "app/"


def clients():
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    region = os.environ.get("AWS_REGION", "us-east-1")
    return (boto3.client("s3", endpoint_url=endpoint, region_name=region),
            boto3.client("kms", endpoint_url=endpoint, region_name=region))


def create():
    s3, kms = clients()
    for bucket in (BUCKET, "lifeboat-demo-store"):
        s3.create_bucket(Bucket=bucket)
    key = kms.create_key(Description="Lifeboat demo store key")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/lifeboat-demo", TargetKeyId=key)
    rng = random.Random(7)
    words = "backup restore region snapshot verify alert chunk pack index manifest".split()
    count, total = 0, 0
    for i in range(40):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(10, 40000))).encode()
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}reports/2026/report-{i:02}.txt", Body=text)
        count, total = count + 1, total + len(text)
    for i in range(12):
        blob = rng.randbytes(rng.randint(100_000, 3_000_000))
        s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}images/img-{i:02}.bin", Body=blob)
        count, total = count + 1, total + len(blob)
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}db/export.bin", Body=rng.randbytes(24 << 20))
    s3.put_object(Bucket=BUCKET, Key=f"{PREFIX}empty.marker", Body=b"")
    count, total = count + 2, total + (24 << 20)
    print(f"{count} objects, {total / 2**20:.1f} MiB in s3://{BUCKET}/{PREFIX}; KMS key {key} (alias/lifeboat-demo)")


def change():
    s3, _ = clients()
    rng = random.Random(11)
    for i in (3, 17, 29):
        key = f"{PREFIX}reports/2026/report-{i:02}.txt"
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"revised " + rng.randbytes(50_000))
        print(f"changed s3://{BUCKET}/{key}")
    s3.copy_object(Bucket=BUCKET, Key=f"{PREFIX}db/export-copy.bin", CopySource={"Bucket": BUCKET, "Key": f"{PREFIX}db/export.bin"})
    print(f"copied db/export.bin to db/export-copy.bin (24 MiB that deduplication should not store again)")


def compare(directory):
    s3, _ = clients()
    root = pathlib.Path(directory)
    source = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
            source[obj["Key"][len(PREFIX):]] = hashlib.sha256(body).hexdigest()
    restored = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in root.rglob("*") if p.is_file()}
    missing = sorted(set(source) - set(restored))
    extra = sorted(set(restored) - set(source))
    different = sorted(k for k in set(source) & set(restored) if source[k] != restored[k])
    if missing or extra or different:
        print(f"MISMATCH: missing {missing}, extra {extra}, different {different}")
        sys.exit(1)
    print(f"OK: all {len(source)} objects restored byte-identical to s3://{BUCKET}/{PREFIX}")


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "create":
        create()
    elif command == "change":
        change()
    elif command == "compare" and len(sys.argv) == 3:
        compare(sys.argv[2])
    else:
        sys.exit("usage: demo_data.py create | change | compare DIR")
