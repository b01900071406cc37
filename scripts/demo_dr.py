"""Sample databases for the disaster-recovery part of scripts/demo.

`setup WORKDIR`: in the emulator (AWS_ENDPOINT_URL), a PostgreSQL DB
instance `orders-db` tagged backup=nightly with 7 days of automated backups,
an untagged `scratch-db`, a KMS key in the DR region (us-west-2) and a
Route 53 zone whose record `orders-db.prod.internal` points at orders-db;
on this machine's PostgreSQL, a database `lifeboat_demo_orders` with data
(the emulator's instances hold none, so validation queries run there);
then the plan file, checks file and DR plan the demo uses, in WORKDIR.

`record`: prints where orders-db.prod.internal points now.
"""
import os
import pathlib
import subprocess
import sys

import boto3

PRIMARY = os.environ.get("AWS_REGION", "us-east-1")
DR = "us-west-2"
ZONE = "prod.internal"
RECORD = "orders-db.prod.internal"
DATABASE = "lifeboat_demo_orders"


def client(service, region=PRIMARY):
    return boto3.client(service, endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=region)


def psql(sql, database="postgres"):
    subprocess.run(["psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", database,
                    "-v", "ON_ERROR_STOP=1", "-c", sql], check=True)


def setup(work):
    work = pathlib.Path(work)
    rds = client("rds")
    for name, tags in (("orders-db", [{"Key": "backup", "Value": "nightly"}]), ("scratch-db", [])):
        rds.create_db_instance(DBInstanceIdentifier=name, DBInstanceClass="db.t3.micro", Engine="postgres",
                               MasterUsername="app", MasterUserPassword="demo-password", AllocatedStorage=20,
                               BackupRetentionPeriod=7, StorageEncrypted=True, Tags=tags)
    endpoint = rds.describe_db_instances(DBInstanceIdentifier="orders-db")["DBInstances"][0]["Endpoint"]["Address"]
    dr_key = client("kms", DR).create_key(Description="Lifeboat demo DR key")["KeyMetadata"]["Arn"]
    route53 = client("route53")
    zone = route53.create_hosted_zone(Name=ZONE, CallerReference="lifeboat-demo")["HostedZone"]["Id"]
    route53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{
        "Action": "UPSERT", "ResourceRecordSet": {
            "Name": RECORD, "Type": "CNAME", "TTL": 60, "ResourceRecords": [{"Value": endpoint}]}}]})
    print(f"RDS ({PRIMARY}): orders-db (tagged backup=nightly), scratch-db (untagged); "
          f"DR key {dr_key} ({DR}); {RECORD} -> {endpoint}")

    psql(f"DROP DATABASE IF EXISTS {DATABASE}")
    psql(f"CREATE DATABASE {DATABASE}")
    psql("CREATE TABLE customers (id int PRIMARY KEY);"
         "CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers(id));"
         "INSERT INTO customers SELECT generate_series(1, 300);"
         "INSERT INTO orders SELECT g, 1 + g % 300 FROM generate_series(1, 1500) g;", DATABASE)
    print(f"PostgreSQL on 127.0.0.1: database {DATABASE} with 300 customers and 1500 orders")

    (work / "plans.toml").write_text(f'''[[plan]]
name = "db-nightly"
description = "Every database tagged backup=nightly, copied to {DR}"
schedule = "cron(0 2 * * ? *)"
timezone = "Europe/Berlin"
tags = {{ backup = "nightly" }}
copy_regions = [{{ region = "{DR}", kms_key = "{dr_key}" }}]
retention = {{ daily = 14, weekly = 8 }}
rpo = "26h"
tier = "critical"
''')
    checks = f'''# The emulator's instances hold no data: the checks run against this
# machine's PostgreSQL. Against AWS: url = "postgres://app@{{host}}:{{port}}/orders"
url = "postgres://postgres@127.0.0.1:5432/{DATABASE}"
[[check]]
name = "orders present"
sql = "SELECT count(*) FROM orders"
at_least = 1000
[[check]]
name = "no orphaned orders"
sql = "SELECT count(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL"
equals = 0
'''
    (work / "checks.toml").write_text(checks)
    (work / "dr.toml").write_text(f'''name = "demo"
primary_region = "{PRIMARY}"
dr_region = "{DR}"

[[database]]
name = "orders"
primary_instance = "orders-db"
strategy = "snapshot"
checks = "checks.toml"
[[database.record]]
zone = "{ZONE}"
name = "{RECORD}"
''')
    print(f"wrote {work}/plans.toml, checks.toml, dr.toml")


def record():
    route53 = client("route53")
    zone = route53.list_hosted_zones_by_name(DNSName=ZONE)["HostedZones"][0]["Id"]
    for rrset in route53.list_resource_record_sets(HostedZoneId=zone)["ResourceRecordSets"]:
        if rrset["Name"].rstrip(".") == RECORD:
            print(f"{RECORD} -> {rrset['ResourceRecords'][0]['Value']}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["setup"] and len(sys.argv) == 3:
        setup(sys.argv[2])
    elif sys.argv[1:] == ["record"]:
        record()
    else:
        sys.exit("usage: demo_dr.py setup WORKDIR | record")
