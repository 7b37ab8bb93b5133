//! Publishing into an S3-compatible bucket through `object_store` (AWS S3, MinIO, Ceph RGW, moto).
//!
//! Configuration comes from the AWS SDKs' standard variables: `AWS_ENDPOINT_URL` (any
//! S3-compatible server; an `http://` endpoint is allowed, for local servers), `AWS_REGION` or
//! `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
//! Conditional writes use `If-None-Match: *` (create) and `If-Match: <etag>` (update), which S3
//! has supported since 2024 (<https://aws.amazon.com/about-aws/whats-new/2024/11/amazon-s3-functionality-conditional-writes/>).
//!
//! object_store is async; publishing is a handful of sequential requests, so each store owns a
//! current-thread tokio runtime and blocks on it. Nothing async leaks out of this file.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::path::Path as ObjectPath;
use object_store::{
    Error as StoreError, ObjectStore, ObjectStoreExt, PutMode, PutPayload, UpdateVersion,
};

use super::store::{Conflict, Object, Store, Tag};

pub struct S3Store {
    bucket: String,
    prefix: String,
    store: AmazonS3,
    runtime: tokio::runtime::Runtime,
}

impl S3Store {
    pub fn open(bucket: &str, prefix: &str, env: &BTreeMap<String, String>) -> Result<Self> {
        let mut builder = AmazonS3Builder::new();
        // The same keys AmazonS3Builder::from_env reads, but from `env` so that tests (and
        // callers) never have to mutate the process environment.
        for (k, v) in env {
            if let Ok(key) = k.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(key, v);
            }
        }
        if let Some(region) = env
            .get("AWS_REGION")
            .or_else(|| env.get("AWS_DEFAULT_REGION"))
        {
            builder = builder.with_region(region);
        }
        if let Some(endpoint) = env
            .get("AWS_ENDPOINT_URL_S3")
            .or_else(|| env.get("AWS_ENDPOINT_URL"))
        {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let store = builder
            .with_bucket_name(bucket)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .build()
            .with_context(|| {
                format!(
                    "configuring s3://{bucket}: set AWS_REGION (or AWS_DEFAULT_REGION), \
                     AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and AWS_ENDPOINT_URL for a \
                     server other than AWS"
                )
            })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the I/O runtime for S3")?;
        Ok(S3Store {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            store,
            runtime,
        })
    }

    fn location(&self, key: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    fn conditional(
        &self,
        key: &str,
        bytes: &[u8],
        mode: PutMode,
    ) -> Result<std::result::Result<(), Conflict>> {
        let location = self.location(key);
        let payload = PutPayload::from(bytes.to_vec());
        match self
            .runtime
            .block_on(self.store.put_opts(&location, payload, mode.into()))
        {
            Ok(_) => Ok(Ok(())),
            Err(StoreError::AlreadyExists { .. }) => Ok(Err(Conflict::Exists)),
            // A 404 on If-Match means the object vanished since it was read: also a change.
            Err(StoreError::Precondition { .. } | StoreError::NotFound { .. }) => {
                Ok(Err(Conflict::Changed))
            }
            Err(e) => Err(e).with_context(|| format!("conditional write of {}", self.url(key))),
        }
    }
}

impl Store for S3Store {
    fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.location(key))
    }

    fn get(&self, key: &str) -> Result<Option<Object>> {
        let location = self.location(key);
        let got = self.runtime.block_on(async {
            let result = self.store.get(&location).await?;
            let tag = result.meta.e_tag.clone();
            // Refused before a byte of the body is read.
            let cap = super::store::size_cap(key);
            if result.meta.size > cap {
                return Ok(Err(result.meta.size));
            }
            let bytes = result.bytes().await?;
            Ok::<_, StoreError>(Ok((tag, bytes)))
        });
        let got = match got {
            Ok(Err(size)) => bail!(
                "{} is {size} bytes, more than the {} it may be: not read",
                self.url(key),
                super::store::size_cap(key)
            ),
            Ok(Ok(object)) => Ok(object),
            Err(e) => Err(e),
        };
        match got {
            Ok((tag, bytes)) => Ok(Some(Object {
                bytes: bytes.to_vec(),
                tag: Tag(
                    tag.with_context(|| format!("{} came back without an ETag", self.url(key)))?
                ),
            })),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", self.url(key))),
        }
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let location = self.location(key);
        self.runtime
            .block_on(self.store.put(&location, PutPayload::from(bytes.to_vec())))
            .with_context(|| format!("uploading {}", self.url(key)))?;
        Ok(())
    }

    fn put_create(&self, key: &str, bytes: &[u8]) -> Result<std::result::Result<(), Conflict>> {
        self.conditional(key, bytes, PutMode::Create)
    }

    fn put_update(
        &self,
        key: &str,
        bytes: &[u8],
        tag: &Tag,
    ) -> Result<std::result::Result<(), Conflict>> {
        let version = UpdateVersion {
            e_tag: Some(tag.0.clone()),
            version: None,
        };
        self.conditional(key, bytes, PutMode::Update(version))
    }

    fn delete(&self, key: &str) -> Result<()> {
        let location = self.location(key);
        match self.runtime.block_on(self.store.delete(&location)) {
            Ok(()) | Err(StoreError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("deleting {}", self.url(key))),
        }
    }
}
