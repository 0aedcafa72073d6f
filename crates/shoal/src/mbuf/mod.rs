//! A process-local stand-in for the mbuf contract (contracts.md), so that ethdev builds and
//! its single-process tests run until the shared-memory mbufs land. Not shared between
//! processes.
#![allow(
    missing_docs,
    clippy::new_without_default,
    clippy::len_without_is_empty
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::eal::Eal;

pub const MAX_BURST: usize = 64;
const HEADROOM: u16 = 128;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Other(String),
}

struct PoolInner {
    name: String,
    data_room: u16,
    free: Mutex<Vec<Box<[u8]>>>,
}

#[derive(Clone)]
pub struct MbufPool {
    inner: Arc<PoolInner>,
}

static POOLS: Mutex<Vec<(String, MbufPool)>> = Mutex::new(Vec::new());
#[allow(clippy::type_complexity)]
static RINGS: Mutex<Option<HashMap<String, MbufRing>>> = Mutex::new(None);

impl MbufPool {
    pub fn create(
        _eal: &Eal,
        name: &str,
        n: u32,
        _cache: u32,
        _priv: u16,
        data_room: u16,
    ) -> Result<MbufPool, Error> {
        let free = (0..n)
            .map(|_| vec![0u8; data_room as usize].into_boxed_slice())
            .collect();
        let p = MbufPool {
            inner: Arc::new(PoolInner {
                name: name.into(),
                data_room,
                free: Mutex::new(free),
            }),
        };
        POOLS.lock().unwrap().push((name.into(), p.clone()));
        Ok(p)
    }
    pub fn lookup(_eal: &Eal, name: &str) -> Result<MbufPool, Error> {
        POOLS
            .lock()
            .unwrap()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| Error::Other(format!("no pool {name}")))
    }
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    pub fn alloc(&self) -> Option<Mbuf> {
        let buf = self.inner.free.lock().unwrap().pop()?;
        Some(Mbuf {
            buf: Some(buf),
            off: HEADROOM,
            len: 0,
            port: 0,
            rss: 0,
            pool: self.inner.clone(),
        })
    }
    pub fn alloc_bulk(&self, batch: &mut MbufBatch, n: usize) -> bool {
        if batch.len() + n > MAX_BURST {
            return false;
        }
        let mut free = self.inner.free.lock().unwrap();
        if free.len() < n {
            return false;
        }
        for _ in 0..n {
            let buf = free.pop().unwrap();
            batch.v.push(Mbuf {
                buf: Some(buf),
                off: HEADROOM,
                len: 0,
                port: 0,
                rss: 0,
                pool: self.inner.clone(),
            });
        }
        true
    }
    pub fn avail_count(&self) -> u32 {
        self.inner.free.lock().unwrap().len() as u32
    }
}

pub struct Mbuf {
    buf: Option<Box<[u8]>>,
    off: u16,
    len: u16,
    port: u16,
    rss: u32,
    pool: Arc<PoolInner>,
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        if let Some(b) = self.buf.take() {
            self.pool.free.lock().unwrap().push(b);
        }
    }
}

impl Mbuf {
    fn b(&self) -> &[u8] {
        self.buf.as_ref().unwrap()
    }
    pub fn data(&self) -> &[u8] {
        &self.b()[self.off as usize..(self.off + self.len) as usize]
    }
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (o, l) = (self.off as usize, self.len as usize);
        &mut self.buf.as_mut().unwrap()[o..o + l]
    }
    pub fn data_len(&self) -> u16 {
        self.len
    }
    pub fn pkt_len(&self) -> u32 {
        self.len as u32
    }
    pub fn append(&mut self, n: u16) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let start = (self.off + self.len) as usize;
        self.len += n;
        Some(&mut self.buf.as_mut().unwrap()[start..start + n as usize])
    }
    pub fn trim(&mut self, n: u16) -> bool {
        if n > self.len {
            return false;
        }
        self.len -= n;
        true
    }
    pub fn headroom(&self) -> u16 {
        self.off
    }
    pub fn tailroom(&self) -> u16 {
        self.pool.data_room - self.off - self.len
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn set_port(&mut self, p: u16) {
        self.port = p
    }
    pub fn rss_hash(&self) -> u32 {
        self.rss
    }
    pub fn set_rss_hash(&mut self, h: u32) {
        self.rss = h
    }
}

#[derive(Default)]
pub struct MbufBatch {
    v: Vec<Mbuf>,
}

impl MbufBatch {
    pub fn new() -> Self {
        Self {
            v: Vec::with_capacity(MAX_BURST),
        }
    }
    pub fn len(&self) -> usize {
        self.v.len()
    }
    pub fn is_empty(&self) -> bool {
        self.v.is_empty()
    }
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.v.len() >= MAX_BURST {
            return Err(m);
        }
        self.v.push(m);
        Ok(())
    }
    pub fn pop(&mut self) -> Option<Mbuf> {
        self.v.pop()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Mbuf> {
        self.v.iter()
    }
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Mbuf> {
        self.v.iter_mut()
    }
    pub fn drain<R: std::ops::RangeBounds<usize>>(&mut self, r: R) -> std::vec::Drain<'_, Mbuf> {
        self.v.drain(r)
    }
    pub fn clear(&mut self) {
        self.v.clear()
    }
}

#[derive(Clone)]
pub struct MbufRing {
    name: String,
    q: Arc<Mutex<std::collections::VecDeque<Mbuf>>>,
    cap: usize,
}

impl MbufRing {
    pub fn create(_eal: &Eal, name: &str, count: u32) -> Result<MbufRing, Error> {
        let r = MbufRing {
            name: name.into(),
            q: Arc::default(),
            cap: count as usize - 1,
        };
        RINGS
            .lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .insert(name.into(), r.clone());
        Ok(r)
    }
    pub fn lookup(_eal: &Eal, name: &str) -> Result<MbufRing, Error> {
        RINGS
            .lock()
            .unwrap()
            .get_or_insert_with(HashMap::new)
            .get(name)
            .cloned()
            .ok_or_else(|| Error::Other(format!("no ring {name}")))
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn enqueue_burst(&self, batch: &mut MbufBatch) -> usize {
        let mut q = self.q.lock().unwrap();
        let n = batch.len().min(self.cap - q.len());
        q.extend(batch.v.drain(..n));
        n
    }
    pub fn dequeue_burst(&self, batch: &mut MbufBatch, max: usize) -> usize {
        let mut q = self.q.lock().unwrap();
        let n = max.min(q.len()).min(MAX_BURST - batch.len());
        batch.v.extend(q.drain(..n));
        n
    }
}
