//! Recovery jobs (`lifeboat::jobs`) against the emulator's DynamoDB: a
//! failed job resumes without running its completed steps again, and a run
//! whose job another run took over stops at its next step.

use lifeboat::catalog::Catalog;
use lifeboat::jobs::{JobError, JobKind, JobStatus, StepError, StepStatus};
use lifeboat_e2e::{dynamodb_client, unique, REGION};

async fn catalog() -> Catalog {
    let catalog = Catalog::new(dynamodb_client().await, &unique("jobs"), REGION);
    catalog.create_table().await.expect("create table");
    catalog
}

#[tokio::test]
async fn a_failed_job_resumes_after_its_completed_steps_and_is_listed_with_its_record() {
    let catalog = catalog().await;
    let jobs = catalog.jobs();
    let mut job = jobs.resume_or_start(JobKind::Failover, "orders-dr").await.unwrap();
    assert!(!job.resumed());
    let id = job.id().to_owned();
    let restored: String = job
        .step("orders/restore", || async { Ok::<_, String>("orders-dr-1".to_owned()) })
        .await
        .unwrap();
    assert_eq!(restored, "orders-dr-1");
    let failed = job
        .step("orders/validate", || async {
            Err::<u32, _>("users: 3 rows, expected at least 1000")
        })
        .await
        .unwrap_err();
    assert!(matches!(failed, StepError::Step { .. }), "{failed}");
    assert!(failed.to_string().contains("orders/validate"), "{failed}");
    let record = job.fail(&failed.to_string()).await.unwrap();
    assert_eq!(record.status, JobStatus::Failed);

    // The second run is the same job: restore is handed back, not run.
    let mut job = jobs.resume_or_start(JobKind::Failover, "orders-dr").await.unwrap();
    assert!(job.resumed());
    assert_eq!(job.id(), id);
    let again: String = job
        .step("orders/restore", || async { Err::<String, _>("must not run twice") })
        .await
        .unwrap();
    assert_eq!(again, "orders-dr-1");
    let count: u32 = job
        .step("orders/validate", || async { Ok::<_, String>(1000) })
        .await
        .unwrap();
    assert_eq!(count, 1000);
    let record = job.finish(Some(serde_json::json!({"rtoSeconds": 1}))).await.unwrap();
    assert_eq!(record.status, JobStatus::Succeeded);
    assert_eq!(record.runs, 2);
    let restore = record.step("orders/restore").unwrap();
    assert_eq!((restore.status, restore.attempts), (StepStatus::Done, 1));
    let validate = record.step("orders/validate").unwrap();
    assert_eq!((validate.status, validate.attempts), (StepStatus::Done, 2));
    assert!(validate.error.is_none() && validate.duration_ms.is_some());

    // Finished: the next run is a new job.
    let next = jobs.resume_or_start(JobKind::Failover, "orders-dr").await.unwrap();
    assert_ne!(next.id(), id);
    let listed = jobs.list(None).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(jobs.get(&id).await.unwrap(), record);
    assert!(matches!(jobs.get("job-nope").await, Err(JobError::Unknown { .. })));
}

#[tokio::test]
async fn a_run_whose_job_was_taken_over_stops_at_its_next_step() {
    let catalog = catalog().await;
    let jobs = catalog.jobs();
    let mut first = jobs.resume_or_start(JobKind::Failback, "orders-dr").await.unwrap();
    first.step("preflight", || async { Ok::<_, String>(()) }).await.unwrap();
    // Another operator runs the same failback meanwhile: it resumes the job.
    let mut second = jobs.resume_or_start(JobKind::Failback, "orders-dr").await.unwrap();
    assert_eq!(second.id(), first.id());
    assert!(second.step_done("preflight"));
    let mut ran = false;
    let stopped = first
        .step("orders/promote", || async {
            ran = true;
            Ok::<_, String>(())
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            &stopped,
            StepError::Job {
                error: JobError::TakenOver { .. },
                ..
            }
        ),
        "{stopped}"
    );
    assert!(!ran, "the overtaken run must not run the step");
    second
        .step("orders/promote", || async { Ok::<_, String>(()) })
        .await
        .unwrap();
    let record = second.finish(None).await.unwrap();
    assert_eq!(record.step("orders/promote").unwrap().attempts, 1);
}
