//! Standard input as one blob (`trawl scan -`).

use super::{read_stdin, Blob, Provenance, Sink, Source, SourceError, Warning, WarningKind};

/// Standard input, read whole up to the size limit.
#[derive(Debug, Default)]
pub struct Stdin;

impl Source for Stdin {
    fn feed(&mut self, sink: &dyn Sink) -> Result<(), SourceError> {
        let data = match read_stdin(sink.max_blob_size()) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::Other => {
                sink.diagnostics().warn(Warning::new(
                    WarningKind::TooLarge,
                    "<stdin>",
                    "skipped: larger than the maximum size (see --max-file-size)",
                ));
                return Ok(());
            }
            Err(source) => {
                return Err(SourceError::Io {
                    what: "reading standard input".into(),
                    source,
                })
            }
        };
        let mut lane = sink.lane();
        lane.blob(
            Blob {
                data: &data,
                id: None,
            },
            "<stdin>",
            &|| vec![Provenance::Stdin],
        );
        Ok(())
    }
}
