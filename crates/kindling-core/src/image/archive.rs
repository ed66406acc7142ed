//! The tar archive of a build context, the body of `POST /build`: the
//! entries the scan selected, owned by root and dated 0, written on a
//! blocking thread while the engine reads it.

use std::io::{self, Write};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::stream::{BoxStream, Stream, StreamExt as _};
use tar::{EntryType, Header};
use tokio::io::DuplexStream;
use tokio::sync::oneshot;
use tokio_util::io::{ReaderStream, SyncIoBridge};

use super::context::{
    BuildContext, ContextEntry, ContextError, EntryKind, SizedReader, read_error,
};

/// The most bytes of a streamed archive held at each step on its way to the
/// engine: the pipe from the writing thread, and each chunk of the body.
const STREAM_CHUNK: usize = 256 * 1024;

impl BuildContext {
    /// Writes the tar archive for `POST /build` to `out`. `extra` adds one
    /// more regular file (name, contents) at the root of the archive, used
    /// when the Dockerfile lies outside the context; it replaces a context
    /// entry of the same name, as the docker CLI does for a Dockerfile read
    /// from stdin. After a failure `out` holds no end-of-archive marker.
    pub(crate) fn write_tar<W: Write>(
        &self,
        extra: Option<(&str, &[u8])>,
        out: W,
    ) -> Result<W, ContextError> {
        let mut builder = tar::Builder::new(Cutoff {
            inner: out,
            cut: false,
        });
        if let Err(error) = self.append_all(&mut builder, extra) {
            builder.get_mut().cut = true;
            return Err(error);
        }
        builder
            .into_inner()
            .map(|cutoff| cutoff.inner)
            .map_err(|source| read_error(&self.root, source))
    }

    fn append_all<W: Write>(
        &self,
        builder: &mut tar::Builder<W>,
        extra: Option<(&str, &[u8])>,
    ) -> Result<(), ContextError> {
        for entry in &self.entries {
            if extra.is_some_and(|(name, _)| name == entry.relative) {
                continue;
            }
            append_entry(builder, entry).map_err(|source| read_error(&entry.absolute, source))?;
        }
        if let Some((name, contents)) = extra {
            let mut header = tar_header(EntryType::Regular, 0o644, contents.len() as u64);
            builder
                .append_data(&mut header, name, contents)
                .map_err(|source| read_error(Path::new(name), source))?;
        }
        Ok(())
    }

    /// The archive of [`BuildContext::write_tar`] as a stream, written by a
    /// blocking thread while the stream is read, so that a large context is
    /// never held whole in memory. When reading the context fails the
    /// stream ends with an error, not with an archive that looks complete,
    /// and [`TarStream::writer`] returns what failed.
    pub(crate) fn stream_tar(self, extra: Option<(&'static str, Vec<u8>)>) -> TarStream {
        let (reader, writer) = tokio::io::duplex(STREAM_CHUNK);
        let (abort, aborted) = oneshot::channel::<io::Error>();
        let writer = tokio::task::spawn_blocking(move || {
            let extra = extra
                .as_ref()
                .map(|(name, contents)| (*name, contents.as_slice()));
            match self.write_tar(extra, SyncIoBridge::new(writer)) {
                Ok(_) => Ok(()),
                // The body was dropped first: the request ended, and the
                // engine's answer says why.
                Err(_) if abort.is_closed() => Ok(()),
                Err(error) => {
                    let _ = abort.send(io::Error::other(error.to_string()));
                    Err(error)
                }
            }
        });
        TarStream {
            body: TarBody {
                aborted: Some(aborted),
                pipe: ReaderStream::with_capacity(reader, STREAM_CHUNK),
            }
            .boxed(),
            writer,
        }
    }
}

/// The body of a streamed archive: the pipe from the writing thread, and
/// once it reaches its end the writer's error, if it sent one, so that the
/// request is aborted instead of ending an archive that misses entries.
struct TarBody {
    // Declared before `pipe`, so dropped first: the writer sees the broken
    // pipe only after the receiver is gone, and so knows the body was
    // dropped rather than reporting a failure nobody reads.
    aborted: Option<oneshot::Receiver<io::Error>>,
    pipe: ReaderStream<DuplexStream>,
}

impl Stream for TarBody {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(chunk) = ready!(self.pipe.poll_next_unpin(cx)) {
            return Poll::Ready(Some(chunk));
        }
        let Some(aborted) = self.aborted.as_mut() else {
            return Poll::Ready(None);
        };
        let sent = ready!(aborted.poll_unpin(cx));
        self.aborted = None;
        Poll::Ready(sent.ok().map(Err))
    }
}

/// A build context's tar archive, written while it is read.
pub(crate) struct TarStream {
    /// The archive in chunks of at most `STREAM_CHUNK` bytes.
    pub body: BoxStream<'static, io::Result<Bytes>>,
    /// The writing thread. It ends once the archive is written or `body` is
    /// dropped, with the error that broke the archive off, if any.
    pub writer: tokio::task::JoinHandle<Result<(), ContextError>>,
}

/// Refuses every write once `cut`: `tar::Builder` ends the archive when it
/// is dropped, also after an entry failed, and an archive that misses
/// entries must not look complete to the engine.
struct Cutoff<W> {
    inner: W,
    cut: bool,
}

impl<W: Write> Write for Cutoff<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.cut {
            return Err(io::Error::other("the archive was broken off"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn tar_header(kind: EntryType, mode: u32, size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(size);
    header
}

fn append_entry<W: Write>(builder: &mut tar::Builder<W>, entry: &ContextEntry) -> io::Result<()> {
    match &entry.kind {
        EntryKind::Directory => {
            let mut header = tar_header(EntryType::Directory, entry.mode, 0);
            let name = format!("{}/", entry.relative);
            builder.append_data(&mut header, name, io::empty())
        }
        EntryKind::Symlink { target } => {
            let mut header = tar_header(EntryType::Symlink, entry.mode, 0);
            builder.append_link(&mut header, &entry.relative, target)
        }
        EntryKind::File { size } => {
            let mut header = tar_header(EntryType::Regular, entry.mode, *size);
            let reader = SizedReader::open(&entry.absolute, *size)?;
            builder.append_data(&mut header, &entry.relative, reader)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::BTreeMap;
    use std::fs;
    use std::io::Read as _;

    use sha2::{Digest as _, Sha256};

    use crate::image::test_tree::{tree, write};

    fn to_tar(
        context: &BuildContext,
        extra: Option<(&str, &[u8])>,
    ) -> Result<Vec<u8>, ContextError> {
        context.write_tar(extra, Vec::new())
    }

    #[derive(Debug, PartialEq, Eq)]
    enum TarItem {
        File(u32, Vec<u8>),
        Dir(u32),
        Symlink(String),
    }

    fn read_tar(bytes: &[u8]) -> BTreeMap<String, TarItem> {
        let mut archive = tar::Archive::new(bytes);
        let mut items = BTreeMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let header = entry.header();
            assert_eq!(header.mtime().unwrap(), 0);
            assert_eq!(header.uid().unwrap(), 0);
            assert_eq!(header.gid().unwrap(), 0);
            let mode = header.mode().unwrap();
            let kind = header.entry_type();
            let path = entry.path().unwrap().to_str().unwrap().to_owned();
            if kind == EntryType::Directory {
                assert!(
                    path.ends_with('/'),
                    "directory {path} without trailing slash"
                );
            }
            let path = path.trim_end_matches('/').to_owned();
            let item = match kind {
                EntryType::Regular => {
                    let mut contents = Vec::new();
                    entry.read_to_end(&mut contents).unwrap();
                    TarItem::File(mode, contents)
                }
                EntryType::Directory => TarItem::Dir(mode),
                EntryType::Symlink => TarItem::Symlink(
                    entry
                        .link_name()
                        .unwrap()
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .to_owned(),
                ),
                other => panic!("unexpected entry type {other:?}"),
            };
            assert!(
                items.insert(path.clone(), item).is_none(),
                "duplicate {path}"
            );
        }
        items
    }

    #[test]
    fn tar_holds_exactly_the_included_entries_and_extra() {
        let dir = tree("build\n!build/keep.txt\n*.log\n");
        let long = format!("{}/{}", "d".repeat(80), "f".repeat(80));
        write(dir.path(), &long, b"long");
        let context = BuildContext::scan(dir.path(), Some("Dockerfile")).unwrap();
        let bytes = to_tar(&context, Some(("outside.Dockerfile", b"FROM scratch\n"))).unwrap();
        assert_eq!(
            bytes,
            to_tar(&context, Some(("outside.Dockerfile", b"FROM scratch\n"))).unwrap(),
            "archive is deterministic"
        );
        let items = read_tar(&bytes);

        let mut expected: Vec<String> = context
            .entries
            .iter()
            .map(|entry| entry.relative.clone())
            .collect();
        expected.push("outside.Dockerfile".to_owned());
        expected.sort();
        assert_eq!(items.keys().cloned().collect::<Vec<_>>(), expected);
        assert!(!items.contains_key("build"));
        assert!(!items.contains_key("app.log"));
        assert!(items.contains_key(&long));

        for entry in &context.entries {
            let item = &items[&entry.relative];
            match &entry.kind {
                EntryKind::File { .. } => assert_eq!(
                    item,
                    &TarItem::File(entry.mode, fs::read(&entry.absolute).unwrap())
                ),
                EntryKind::Directory => assert_eq!(item, &TarItem::Dir(entry.mode)),
                EntryKind::Symlink { target } => {
                    assert_eq!(item, &TarItem::Symlink(target.clone()));
                }
            }
        }
        assert_eq!(
            items["outside.Dockerfile"],
            TarItem::File(0o644, b"FROM scratch\n".to_vec())
        );
    }

    #[cfg(unix)]
    #[test]
    fn tar_keeps_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "real", b"data");
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
        let context = BuildContext::scan(dir.path(), None).unwrap();
        let items = read_tar(&to_tar(&context, None).unwrap());
        assert_eq!(items["link"], TarItem::Symlink("real".to_owned()));
    }

    #[test]
    fn tar_extra_replaces_a_context_entry_of_the_same_name() {
        let dir = tree("");
        let context = BuildContext::scan(dir.path(), Some("Dockerfile")).unwrap();
        let items = read_tar(&to_tar(&context, Some(("Dockerfile", b"FROM other\n"))).unwrap());
        assert_eq!(
            items["Dockerfile"],
            TarItem::File(0o644, b"FROM other\n".to_vec())
        );
        assert_eq!(items.len(), context.entries.len());
    }

    #[test]
    fn file_changed_after_scan_is_an_error() {
        let dir = tree("");
        let context = BuildContext::scan(dir.path(), Some("Dockerfile")).unwrap();
        write(dir.path(), "README.md", b"much longer than before");
        let error = to_tar(&context, None).unwrap_err();
        assert!(matches!(&error, ContextError::Read { path, .. } if path.ends_with("README.md")));
        let mut hasher = Sha256::new();
        assert!(context.feed_digest(&mut hasher).is_err());

        write(dir.path(), "README.md", b"");
        assert!(to_tar(&context, None).is_err());
    }

    /// Every item of a streamed archive, then what its writer returned.
    async fn drain(stream: TarStream) -> (Vec<io::Result<Bytes>>, Result<(), ContextError>) {
        let items = stream.body.collect::<Vec<_>>().await;
        (items, stream.writer.await.unwrap())
    }

    #[tokio::test]
    async fn streamed_tar_is_the_written_tar_in_bounded_chunks() {
        let dir = tree("");
        write(dir.path(), "large.bin", &vec![b'x'; 3 * STREAM_CHUNK + 17]);
        let context = BuildContext::scan(dir.path(), Some("Dockerfile")).unwrap();
        let extra = Some(("outside.Dockerfile", b"FROM scratch\n".as_slice()));
        let expected = to_tar(&context, extra).unwrap();
        let (items, written) =
            drain(context.stream_tar(extra.map(|(name, contents)| (name, contents.to_vec()))))
                .await;
        written.unwrap();
        let mut streamed = Vec::new();
        for item in items {
            let chunk = item.unwrap();
            assert!(
                chunk.len() <= STREAM_CHUNK,
                "a chunk of {} bytes",
                chunk.len()
            );
            streamed.extend_from_slice(&chunk);
        }
        assert_eq!(streamed, expected);
    }

    #[tokio::test]
    async fn a_file_changed_while_streamed_breaks_the_stream_off() {
        let dir = tree("");
        let context = BuildContext::scan(dir.path(), Some("Dockerfile")).unwrap();
        write(dir.path(), "README.md", b"much longer than before");
        let (mut items, written) = drain(context.stream_tar(None)).await;
        assert!(
            matches!(&written, Err(ContextError::Read { path, .. }) if path.ends_with("README.md")),
            "{written:?}"
        );
        assert!(
            matches!(items.pop(), Some(Err(_))),
            "the stream ends without an error"
        );
        let sent: Vec<u8> = items
            .into_iter()
            .flat_map(|item| item.unwrap().to_vec())
            .collect();
        assert!(
            !sent.ends_with(&[0; 1024]),
            "the broken-off archive has an end marker"
        );
    }

    #[tokio::test]
    async fn the_writer_stops_when_the_stream_is_dropped() {
        let dir = tree("");
        write(dir.path(), "large.bin", &vec![b'x'; 8 * STREAM_CHUNK]);
        let context = BuildContext::scan(dir.path(), Some("Dockerfile")).unwrap();
        let mut stream = context.stream_tar(None);
        stream.body.next().await.unwrap().unwrap();
        drop(stream.body);
        stream.writer.await.unwrap().unwrap();
    }
}
