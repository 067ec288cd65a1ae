// A minimal reader for uncompressed ("stored") zip archives, as torch.save writes them.
import AuscultTensor
import Foundation

struct ZipArchive {
    struct Problem: Error, CustomStringConvertible { var description: String }
    private let data: Data
    private var entries: [String: (offset: Int, size: Int, method: Int)] = [:]
    var names: [String] { entries.keys.sorted() }

    init(_ data: Data) throws {
        self.data = data
        func u16(_ o: Int) throws -> Int {
            guard let v = LittleEndian.uint(data, at: o, bytes: 2) else {
                throw Problem(description: "truncated at \(o)")
            }
            return v
        }
        func u32(_ o: Int) throws -> Int {
            guard let v = LittleEndian.uint(data, at: o, bytes: 4) else {
                throw Problem(description: "truncated at \(o)")
            }
            return v
        }
        func u64(_ o: Int) throws -> Int {
            guard let v = LittleEndian.uint(data, at: o, bytes: 8) else {
                throw Problem(description: "truncated at \(o)")
            }
            return v
        }
        var eocd = -1
        var o = data.count - 22
        while o >= max(0, data.count - 65_557) {
            if try u32(o) == 0x0605_4b50 { eocd = o; break }
            o -= 1
        }
        guard eocd >= 0 else { throw Problem(description: "no end-of-central-directory record") }
        var count = try u16(eocd + 10)
        var cd = try u32(eocd + 16)
        if cd == 0xFFFF_FFFF || count == 0xFFFF, eocd >= 20, try u32(eocd - 20) == 0x0706_4b50 {
            let z64 = try u64(eocd - 12)
            count = try u64(z64 + 32)
            cd = try u64(z64 + 48)
        }
        var p = cd
        for _ in 0..<count {
            guard try u32(p) == 0x0201_4b50 else { throw Problem(description: "bad central directory entry at \(p)") }
            let method = try u16(p + 10)
            var size = try u32(p + 20)
            let nameLen = try u16(p + 28), extraLen = try u16(p + 30), commentLen = try u16(p + 32)
            var local = try u32(p + 42)
            guard p + 46 + nameLen <= data.count else { throw Problem(description: "truncated name") }
            let name = String(decoding: data.subdata(in: (p + 46)..<(p + 46 + nameLen)), as: UTF8.self)
            // zip64 extra field: uncompressed, compressed sizes and offset, each only if saturated.
            var e = p + 46 + nameLen
            let end = e + extraLen
            while e + 4 <= end {
                let id = try u16(e), len = try u16(e + 2)
                if id == 1 {
                    var q = e + 4
                    if try u32(p + 24) == 0xFFFF_FFFF { size = try u64(q); q += 8 }
                    if try u32(p + 20) == 0xFFFF_FFFF { q += 8 }
                    if local == 0xFFFF_FFFF { local = try u64(q) }
                }
                e += 4 + len
            }
            let lName = try u16(local + 26), lExtra = try u16(local + 28)
            let start = local + 30 + lName + lExtra
            guard start + size <= data.count else { throw Problem(description: "entry \(name) runs past the end") }
            entries[name] = (start, size, method)
            p += 46 + nameLen + extraLen + commentLen
        }
    }

    func entry(_ name: String) throws -> Data {
        guard let e = entries[name] else { throw Problem(description: "no entry \(name)") }
        guard e.method == 0 else {
            throw Problem(
                description: "entry \(name) is compressed (method \(e.method)); torch.save stores entries uncompressed")
        }
        return data.subdata(in: e.offset..<(e.offset + e.size))
    }
}
