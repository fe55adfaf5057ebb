//! Pruned or lost: the pruner raises its type's watermark in the transaction that deletes
//! published events, so the audit accepts a missing event at or before it and reports one after
//! it.

use chrono::{NaiveDateTime, Utc};
use diesel::mysql::MysqlConnection;
use payment_engine::audit::ChargeEvents;
use payment_engine::db::outbox::{prune_published, prune_watermarks};

use super::{audit_of, paid, plant};
use crate::helpers::{scalar, spawn_app};

fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

/// Marks the payment.completed event of `payment` published a day ago.
fn publish_long_ago(conn: &mut MysqlConnection, payment: i64) {
    plant(
        conn,
        &format!(
            "UPDATE outbox_events SET status = 'PUBLISHED', \
             published_at = UTC_TIMESTAMP(6) - INTERVAL 1 DAY \
             WHERE event_type = 'payment.completed' AND entity_id = {payment}"
        ),
    );
}

#[actix_web::test]
async fn a_pruned_event_is_not_reported_and_a_lost_one_after_the_watermark_is() {
    let app = spawn_app().await;
    let early = paid(&app, 1).await;
    let late = paid(&app, 2).await;
    let mut conn = app.db_conn();
    publish_long_ago(&mut conn, early.payment.unwrap());

    // Only published events older than the cutoff go; pending ones stay.
    let cutoff = now() - chrono::Duration::hours(1);
    assert_eq!(prune_published(&mut conn, cutoff, 100).unwrap(), 1);
    assert_eq!(prune_published(&mut conn, cutoff, 100).unwrap(), 0);
    assert_eq!(
        scalar(&mut conn, "SELECT COUNT(*) AS n FROM outbox_events"),
        1
    );
    let marks = prune_watermarks(&mut conn).unwrap();
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert_eq!(
        (marks[0].event_type.as_str(), marks[0].events),
        ("payment.completed", 1)
    );
    let early_paid_at = scalar(
        &mut conn,
        &format!(
            "SELECT COUNT(*) AS n FROM payments WHERE id = {} AND paid_at = '{}'",
            early.payment.unwrap(),
            marks[0].occurred_through
        ),
    );
    assert_eq!(
        early_paid_at, 1,
        "the watermark is the pruned event's occurred_at, its paid_at"
    );

    let pruned = audit_of(&mut conn, None, ChargeEvents::Auto);
    assert!(
        pruned.is_clean(),
        "a pruned event is no finding: {:#?}",
        pruned.findings.kept
    );
    assert_eq!(pruned.watermarks, marks);

    // The later payment's event was never published: losing it is a finding.
    plant(
        &mut conn,
        &format!("DELETE FROM outbox_events WHERE buyer_id = {}", late.id),
    );
    let lost = audit_of(&mut conn, None, ChargeEvents::Auto);
    let found: Vec<_> = lost
        .findings
        .kept
        .iter()
        .map(|f| (f.kind.name(), f.payment_id))
        .collect();
    assert_eq!(found, vec![("event_missing", late.payment)]);
}

#[actix_web::test]
async fn the_watermark_only_ever_rises_and_counts_every_pruned_event() {
    let app = spawn_app().await;
    let first = paid(&app, 1).await;
    let second = paid(&app, 2).await;
    let mut conn = app.db_conn();
    publish_long_ago(&mut conn, second.payment.unwrap());
    let cutoff = now() - chrono::Duration::hours(1);
    assert_eq!(prune_published(&mut conn, cutoff, 100).unwrap(), 1);
    let after_second = prune_watermarks(&mut conn).unwrap()[0].clone();

    // An older event pruned later leaves the watermark where it was.
    publish_long_ago(&mut conn, first.payment.unwrap());
    assert_eq!(prune_published(&mut conn, cutoff, 100).unwrap(), 1);
    let marks = prune_watermarks(&mut conn).unwrap();
    assert_eq!(marks[0].occurred_through, after_second.occurred_through);
    assert!(marks[0].seq_through >= after_second.seq_through);
    assert_eq!(marks[0].events, 2);
    assert!(audit_of(&mut conn, None, ChargeEvents::Auto).is_clean());
}

#[actix_web::test]
async fn pruning_takes_at_most_its_limit_per_call() {
    let app = spawn_app().await;
    let mut payments = Vec::new();
    for buyer in 1..=3 {
        payments.push(paid(&app, buyer).await.payment.unwrap());
    }
    let mut conn = app.db_conn();
    for payment in &payments {
        publish_long_ago(&mut conn, *payment);
    }
    let cutoff = now();
    assert_eq!(prune_published(&mut conn, cutoff, 2).unwrap(), 2);
    assert_eq!(prune_watermarks(&mut conn).unwrap()[0].events, 2);
    assert_eq!(prune_published(&mut conn, cutoff, 2).unwrap(), 1);
    assert_eq!(prune_watermarks(&mut conn).unwrap()[0].events, 3);
    assert!(audit_of(&mut conn, None, ChargeEvents::Auto).is_clean());
}
