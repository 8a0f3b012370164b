//! Wire types of the Dfns API.
//!
//! Request types serialize exactly the documented fields (Dfns schemas set
//! `additionalProperties: false`, so an extra field is a 400). Response types ignore fields they
//! do not know, so a newer Dfns does not break the operator.
pub mod credential;
pub mod pat;
pub mod permission;
pub mod service_account;
pub mod user_action;

use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, SeqAccess, Visitor};

/// `{ "items": [...] }`, the shape of every unpaginated list.
#[derive(Debug, Clone, Deserialize)]
pub struct ItemList<T> {
    pub items: Vec<T>,
}

/// `{ "items": [...] }` read as `U`s, each item converted from its wire type `T` as soon as it is
/// parsed: an unpaginated list of 10,000 identities never exists as 10,000 wire objects at once.
#[derive(Debug)]
pub struct ConvertedList<T, U> {
    pub items: Vec<U>,
    wire: PhantomData<fn() -> T>,
}

impl<'de, T, U> Deserialize<'de> for ConvertedList<T, U>
where
    T: Deserialize<'de> + Into<U>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(bound(deserialize = "S: Deserialize<'de>"))]
        struct Items<S> {
            items: S,
        }
        let Items {
            items: Converted(items, _),
        } = Items::<Converted<T, U>>::deserialize(deserializer)?;
        Ok(Self {
            items,
            wire: PhantomData,
        })
    }
}

struct Converted<T, U>(Vec<U>, PhantomData<fn() -> T>);

impl<'de, T, U> Deserialize<'de> for Converted<T, U>
where
    T: Deserialize<'de> + Into<U>,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Each<T, U>(PhantomData<fn() -> (T, U)>);
        impl<'de, T, U> Visitor<'de> for Each<T, U>
        where
            T: Deserialize<'de> + Into<U>,
        {
            type Value = Vec<U>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<U>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(item) = seq.next_element::<T>()? {
                    items.push(item.into());
                }
                Ok(items)
            }
        }
        let items = deserializer.deserialize_seq(Each::<T, U>(PhantomData))?;
        Ok(Self(items, PhantomData))
    }
}

/// A permission as it appears inside an identity (`permissionAssignments[]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionAssignmentRef {
    pub permission_id: String,
    #[serde(default)]
    pub permission_name: Option<String>,
    /// Empty in some older responses.
    #[serde(default)]
    pub assignment_id: String,
    #[serde(default)]
    pub operations: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::types::service_account::ServiceAccount;

    #[test]
    fn a_converted_list_maps_every_item_as_the_whole_list_would() {
        let body = serde_json::json!({
            "items": [
                {"userInfo": {"userId": "us-1", "name": "a", "isActive": true},
                 "accessTokens": [{"tokenId": "to-1", "credId": "c1", "isActive": true}]},
                {"userInfo": {"userId": "us-2", "name": "b", "isActive": false},
                 "accessTokens": [{"tokenId": "to-2", "credId": "c2", "isActive": false}]}
            ],
            "nextPageToken": null
        })
        .to_string();
        let converted: ConvertedList<ServiceAccount, Identity> =
            serde_json::from_str(&body).unwrap();
        let whole: ItemList<ServiceAccount> = serde_json::from_str(&body).unwrap();
        let expected: Vec<Identity> = whole.items.into_iter().map(Into::into).collect();
        assert_eq!(converted.items, expected);
    }

    #[test]
    fn a_list_without_items_or_with_a_bad_item_is_refused() {
        let refused = |body: &str| {
            serde_json::from_str::<ConvertedList<ServiceAccount, Identity>>(body).is_err()
        };
        assert!(refused(r#"{"things": []}"#));
        assert!(refused(r#"{"items": {}}"#));
        assert!(refused(r#"{"items": [{"userInfo": {}}]}"#));
    }
}
