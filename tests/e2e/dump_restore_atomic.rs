//! `restore dump --overwrite` is all or nothing, against this machine's
//! MariaDB and PostgreSQL: a dump that fails to load partway leaves the
//! existing target exactly as it was (and a database the restore created is
//! dropped again); a good one replaces every dumped table; a MariaDB dump
//! holding a view is refused for an existing target, naming the view.

use std::path::Path;

use serde_json::Value;

use crate::support::{describe, Engine, Store, TestDb};

/// Customers and orders (with a foreign key), `orders` rows of them.
fn fill(db: &TestDb, orders: u32) {
    db.sql(&format!(
        "CREATE TABLE customers (id int PRIMARY KEY, name varchar(100) NOT NULL);
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, note varchar(200),
                              FOREIGN KEY (customer_id) REFERENCES customers(id));
         INSERT INTO customers SELECT seq, CONCAT('customer ', seq) FROM seq_1_to_200;
         INSERT INTO orders SELECT seq, 1 + seq % 200, MD5(seq) FROM seq_1_to_{orders};"
    ));
}

fn backup(store: &Store, url: &str, env: &[(&str, &str)]) -> String {
    let output = store.run_with(&["--output", "json", "backup", "dump", url], env);
    assert!(output.status.success(), "{}", describe(&output));
    let summary: Value = serde_json::from_slice(&output.stdout).expect("JSON summary");
    assert_eq!(summary["status"], "completed", "{summary}");
    summary["backupId"].as_str().expect("backup id").to_owned()
}

/// A `mariadb-dump` on PATH that runs the real one and breaks one row of
/// `orders` near its end: a completed backup whose SQL fails to load after
/// `customers` and most of `orders` were replayed.
fn damaging_mariadb_dump(dir: &Path) -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    let real = std::env::split_paths(&path)
        .map(|d| d.join("mariadb-dump"))
        .find(|p| p.is_file())
        .expect("mariadb-dump on PATH");
    let script = dir.join("mariadb-dump");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\"{}\" \"$@\" | sed 's/^INSERT INTO `orders` VALUES (2900,/INSERT INTO `orders` VALUES (2900,,/'\n",
            real.display()
        ),
    )
    .expect("write the damaging mariadb-dump");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    format!("{}:{path}", dir.display())
}

/// The server's databases whose names start with `prefix`.
fn databases_like(engine: Engine, prefix: &str) -> Vec<String> {
    engine
        .sql(
            engine.maintenance(),
            &format!("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE '{prefix}%'"),
        )
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn mariadb_overwrite_with_a_dump_that_fails_to_load_leaves_the_target_untouched() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(Store::new());
    let source = TestDb::create(Engine::Mariadb, "lbatomsrc");
    fill(&source, 3000);
    let good = backup(&store, &source.url(), &[]);
    let fake = tempfile::tempdir().expect("tempdir");
    let damaged = backup(&store, &source.url(), &[("PATH", &damaging_mariadb_dump(fake.path()))]);

    // The target: another shop, plus a table the dump does not hold.
    let target = TestDb::create(Engine::Mariadb, "lbatomdst");
    fill(&target, 1000);
    target.sql(
        "UPDATE customers SET name = 'kept'; CREATE TABLE notes (id int PRIMARY KEY); INSERT INTO notes VALUES (7);",
    );
    let before = target.contents();

    let failed = store.run(&["restore", "dump", &damaged, "--to", &target.url(), "--overwrite"]);
    assert!(!failed.status.success(), "{}", describe(&failed));
    let message = String::from_utf8_lossy(&failed.stderr);
    assert!(
        message.contains("staging database") && message.contains("was not changed"),
        "{message}"
    );
    assert_eq!(
        target.contents(),
        before,
        "a failed --overwrite restore changed the target"
    );
    assert_eq!(
        databases_like(Engine::Mariadb, &format!("{}__lbrestore", target.name)),
        Vec::<String>::new()
    );

    // Into a database the restore creates: dropped again.
    let fresh = TestDb::named(Engine::Mariadb, "lbatomnew");
    let failed = store.run(&["restore", "dump", &damaged, "--to", &fresh.url()]);
    assert!(!failed.status.success(), "{}", describe(&failed));
    assert_eq!(databases_like(Engine::Mariadb, &fresh.name), Vec::<String>::new());

    // The good dump replaces every dumped table; the other table stays.
    store.ok(&["restore", "dump", &good, "--to", &target.url(), "--overwrite"]);
    let mut after = target.contents();
    assert_eq!(after.remove("notes").as_deref(), Some("7\n"));
    assert_eq!(after, source.contents(), "overwritten rows differ");
    assert_eq!(
        databases_like(Engine::Mariadb, &format!("{}__lbrestore", target.name)),
        Vec::<String>::new()
    );

    // A view cannot move between databases: refused for the existing target, by name.
    source.sql("CREATE VIEW busy_customers AS SELECT customer_id, COUNT(*) AS n FROM orders GROUP BY customer_id;");
    let with_view = backup(&store, &source.url(), &[]);
    let before = target.contents();
    let refused = store.run(&["restore", "dump", &with_view, "--to", &target.url(), "--overwrite"]);
    assert!(!refused.status.success(), "{}", describe(&refused));
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("view busy_customers") && message.contains("restore into a new database"),
        "{message}"
    );
    assert_eq!(target.contents(), before, "a refused restore changed the target");
    let fresh = TestDb::named(Engine::Mariadb, "lbatomview");
    store.ok(&["restore", "dump", &with_view, "--to", &fresh.url()]);
    assert_eq!(fresh.contents(), source.contents(), "the view's database differs");
}

#[test]
fn postgres_overwrite_that_fails_partway_rolls_back_entirely() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let store = runtime.block_on(Store::new());
    let source = TestDb::create(Engine::Postgres, "lbatompg");
    let role = source.name.replace("lbatompg", "lbgone");
    source.admin(&format!("CREATE ROLE {role}"));
    source.sql(&format!(
        "CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a SELECT generate_series(1, 500);
         CREATE TABLE b (id int PRIMARY KEY); INSERT INTO b VALUES (1);
         ALTER TABLE b OWNER TO {role};"
    ));
    // The dump says `ALTER TABLE b OWNER TO <role>`; the role is gone by restore time.
    let id = backup(&store, &source.url(), &[]);
    source.sql("ALTER TABLE b OWNER TO postgres;");
    source.admin(&format!("DROP ROLE {role}"));

    let target = TestDb::create(Engine::Postgres, "lbatompgdst");
    target.sql("CREATE TABLE a (id int PRIMARY KEY); INSERT INTO a VALUES (42); CREATE TABLE b (id int); INSERT INTO b VALUES (43);");
    let before = target.contents();
    let failed = store.run(&["restore", "dump", &id, "--to", &target.url(), "--overwrite"]);
    assert!(!failed.status.success(), "{}", describe(&failed));
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains(&role),
        "{}",
        describe(&failed)
    );
    assert_eq!(
        target.contents(),
        before,
        "a failed --overwrite restore changed the target"
    );
}
