//! The DynamoDB backend (`dynamodb://TABLE`). Being written.

use std::sync::Arc;

use super::{Store, StoreError};

/// Open the store in table `table`.
pub async fn open(table: &str) -> Result<Arc<dyn Store>, StoreError> {
    Err(StoreError::Unavailable {
        path: format!("dynamodb://{table}"),
        reason: "the DynamoDB backend is not built yet".into(),
    })
}

/// Create the table (`piflow store init`).
pub async fn init(table: &str) -> Result<String, StoreError> {
    Err(StoreError::Unavailable {
        path: format!("dynamodb://{table}"),
        reason: "the DynamoDB backend is not built yet".into(),
    })
}
