//! Upgrading a database that has history but no change feed: the
//! migration numbers the recorded history, oldest first, and streams then
//! replay it and go on from it.

use migrations::MigratorTrait as _;
use sea_orm::{ConnectionTrait as _, Database};

use super::*;

both_backends!(the_feed_migration_numbers_the_history_already_recorded);

async fn the_feed_migration_numbers_the_history_already_recorded(app: TestApp) {
    let a = create_named(&app, "a").await;
    let b = create_named(&app, "b").await;
    set_description(&app, &a.id, "second").await;

    // Back to the schema before the feed (its migration undone), then up
    // again: as a database of an older release being upgraded.
    let db = Database::connect(app.database_url()).await.unwrap();
    migrations::Migrator::down(&db, Some(1)).await.unwrap();
    let gone = db
        .execute_unprepared("SELECT 1 FROM change_feed")
        .await
        .is_err();
    assert!(gone, "undoing the migration drops the feed");
    migrations::Migrator::up(&db, None).await.unwrap();
    db.close().await.unwrap();

    // A server started now has nothing in memory: the stream reads the
    // numbered history from the database.
    let replica = app.spawn_replica().await;
    let mut stream = open_with(&mut replica.client.clone(), from_oldest()).await;
    assert_eq!(
        plain(&changes_of(&mut stream, 3).await),
        [
            change(&a.id, 1, pb::ChangeKind::Create),
            change(&b.id, 1, pb::ChangeKind::Create),
            change(&a.id, 2, pb::ChangeKind::Update),
        ]
    );
    // New writes go on after the history.
    let c = create_named(&app, "c").await;
    assert_eq!(
        plain(&changes_of(&mut stream, 1).await),
        [change(&c.id, 1, pb::ChangeKind::Create)]
    );
}
