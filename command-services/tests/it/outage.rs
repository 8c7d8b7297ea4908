//! The store going away: commands answer 503 and write nothing, `/ready`
//! says so, and everything works again once it is back.

use command_services::ServiceName;
use domain::stock::Stock;
use serde_json::json;

use crate::with_system;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_answer_503_while_the_store_is_down_and_work_again_after() {
    with_system(false, |mut system| async move {
        system.restock("DOWN", 1).await;
        system.cluster.stop_store().await.unwrap();
        let inventory = system.cluster.url(ServiceName::Inventory).unwrap();
        let ready = system
            .http
            .get(format!("{inventory}/ready"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(ready, 503);
        let refused = system
            .call(ServiceName::Inventory, "restock")
            .actor("admin")
            .key("during-outage")
            .send(json!({"sku": "DOWN", "quantity": 5}))
            .await;
        assert_eq!((refused.status, refused.code()), (503, "unavailable"));
        let new_product = system
            .call(ServiceName::Catalog, "add-product")
            .actor("admin")
            .send(json!({"sku": "NEWDOWN", "name": "x", "description": "", "price_cents": 5, "category": "c"}))
            .await;
        assert_eq!(new_product.status, 503);

        system.cluster.start_store_again().await.unwrap();
        // The client retries with the same key once the store is back.
        let retried = system
            .call(ServiceName::Inventory, "restock")
            .actor("admin")
            .key("during-outage")
            .send(json!({"sku": "DOWN", "quantity": 5}))
            .await;
        assert_eq!(retried.status, 200, "{retried:?}");
        assert_eq!(system.state::<Stock>("stock-DOWN").await.available, 6);
        let ready = system
            .http
            .get(format!("{inventory}/ready"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(ready, 200);
        system
    })
    .await;
}
