// Dataset folders: LibriSpeech `*.trans.txt`, Hugging Face AudioFolder `metadata.csv`, or a
// CSV / JSONL manifest with a file column and a transcript column.
import AuscultAudio
import Foundation

/// One clip of a dataset: an id, the audio path and its reference transcript if known.
public struct DatasetItem: Sendable, Equatable {
    public var id: String
    public var path: String
    public var reference: String?
    public init(id: String, path: String, reference: String?) {
        self.id = id; self.path = path; self.reference = reference
    }
}

/// A list of clips read from a folder or manifest.
public struct Dataset: Sendable {
    public var items: [DatasetItem]
    static let audioExtensions = ["wav", "flac", "ogg", "mp3", "opus"]

    /// Loads `path`: a manifest file (.csv/.jsonl), or a folder holding `metadata.csv`, a
    /// `manifest.csv`/`.jsonl`, LibriSpeech `*.trans.txt` files, or bare audio files.
    public static func load(_ path: String) throws -> Dataset {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
            throw WhisperError(.datasetNotFound, "\(path): no such dataset folder or manifest")
        }
        if !isDir.boolValue {
            return try unique(manifest(path, base: (path as NSString).deletingLastPathComponent), source: path)
        }
        for name in ["metadata.csv", "metadata.jsonl", "manifest.csv", "manifest.jsonl"] {
            let p = (path as NSString).appendingPathComponent(name)
            if fm.fileExists(atPath: p) { return try unique(manifest(p, base: path), source: p) }
        }
        let all = (fm.enumerator(atPath: path)?.allObjects as? [String] ?? []).sorted()
        let trans = all.filter { $0.hasSuffix(".trans.txt") }
        if !trans.isEmpty {
            var items = [DatasetItem]()
            for t in trans {
                let dir = (path as NSString).appendingPathComponent((t as NSString).deletingLastPathComponent)
                let text = try String(contentsOfFile: (path as NSString).appendingPathComponent(t), encoding: .utf8)
                for line in text.split(separator: "\n") {
                    guard let sp = line.firstIndex(of: " ") else { continue }
                    let id = String(line[..<sp]), ref = String(line[line.index(after: sp)...])
                    let audio =
                        audioExtensions.map { (dir as NSString).appendingPathComponent("\(id).\($0)") }
                        .first { fm.fileExists(atPath: $0) } ?? (dir as NSString).appendingPathComponent("\(id).flac")
                    items.append(DatasetItem(id: id, path: audio, reference: ref))
                }
            }
            return try unique(Dataset(items: items), source: path)
        }
        let audio = all.filter { audioExtensions.contains(($0 as NSString).pathExtension.lowercased()) }
        guard !audio.isEmpty else {
            throw WhisperError(.datasetNotFound, "\(path): no metadata.csv, manifest, *.trans.txt or audio files found")
        }
        // The id is the path below the folder without its extension (`jfk`, `a/jfk`), so files of
        // one name in different subfolders stay apart.
        return try unique(
            Dataset(
                items: audio.map {
                    DatasetItem(
                        id: ($0 as NSString).deletingPathExtension, path: (path as NSString).appendingPathComponent($0),
                        reference: nil)
                }), source: path)
    }

    /// `dataset` if no two clips share an id (results, resumption and indexes are keyed by it).
    static func unique(_ dataset: Dataset, source: String) throws -> Dataset {
        var seen = [String: String]()
        for item in dataset.items {
            if let other = seen[item.id] {
                throw WhisperError(
                    .invalidArgument,
                    "\(source): two clips have the id '\(item.id)' (\(other) and \(item.path)); ids must be unique "
                        + "(give the manifest an id column, or rename one file)")
            }
            seen[item.id] = item.path
        }
        return dataset
    }

    static let fileKeys = ["file_name", "file", "path", "audio", "audio_filepath"]
    static let textKeys = ["transcription", "transcript", "text", "sentence", "reference"]

    static func manifest(_ path: String, base: String) throws -> Dataset {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw WhisperError(.invalidArgument, "\(path): cannot read the manifest")
        }
        var records = [[String: String]]()
        if path.hasSuffix(".jsonl") {
            for (n, line) in text.split(separator: "\n").enumerated()
            where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                    throw WhisperError(.invalidArgument, "\(path):\(n + 1): not a JSON object")
                }
                records.append(obj.compactMapValues { $0 as? String ?? ($0 as? NSNumber)?.stringValue })
            }
        } else {
            let rows = CSV.parse(text)
            guard let header = rows.first else { return Dataset(items: []) }
            for r in rows.dropFirst() where r.count > 1 || r.first?.isEmpty == false {
                var rec = [String: String]()
                for (k, v) in zip(header, r) { rec[k.trimmingCharacters(in: .whitespaces)] = v }
                records.append(rec)
            }
        }
        var items = [DatasetItem]()
        for (n, rec) in records.enumerated() {
            guard let file = fileKeys.lazy.compactMap({ rec[$0] }).first else {
                throw WhisperError(
                    .invalidArgument,
                    "\(path): record \(n + 1) has no file column (one of \(fileKeys.joined(separator: ", ")))")
            }
            let full = file.hasPrefix("/") ? file : (base as NSString).appendingPathComponent(file)
            // Without an id column: the file's path as written in the manifest, without its extension.
            let id =
                rec["id"]
                ?? (file.hasPrefix("/") ? ((file as NSString).lastPathComponent as NSString) : (file as NSString))
                .deletingPathExtension
            items.append(DatasetItem(id: id, path: full, reference: textKeys.lazy.compactMap { rec[$0] }.first))
        }
        return Dataset(items: items)
    }
}

/// RFC 4180 CSV: quoted fields with doubled quotes and embedded commas/newlines.
enum CSV {
    static func parse(_ text: String) -> [[String]] {
        var rows = [[String]](), row = [String](), field = ""
        var quoted = false
        var it = Array(text.unicodeScalars)[...]
        while let c = it.popFirst() {
            if quoted {
                if c == "\"" {
                    if it.first == "\"" {
                        field.unicodeScalars.append("\""); it = it.dropFirst()
                    } else {
                        quoted = false
                    }
                } else {
                    field.unicodeScalars.append(c)
                }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                row.append(field); field = ""
            } else if c == "\n" {
                row.append(field); rows.append(row); row = []; field = ""
            } else if c != "\r" {
                field.unicodeScalars.append(c)
            }
        }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }
}

extension Dataset {
    /// The items whose audio can be read, and the others with the reason (reported by the
    /// caller, left out of the run).
    public static func readable(
        _ items: [DatasetItem]
    ) -> (
        readable: [DatasetItem], skipped: [(item: DatasetItem, error: any Error)]
    ) {
        var ok = [DatasetItem](), skipped = [(item: DatasetItem, error: any Error)]()
        for item in items {
            do {
                _ = try AudioClip(contentsOf: item.path)
                ok.append(item)
            } catch {
                skipped.append((item, error))
            }
        }
        return (ok, skipped)
    }
}
