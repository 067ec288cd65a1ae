import AuscultLens
import AuscultWhisper
import Testing
import _TestSupport

@Suite("One condition syntax for the command line, sweeps and the reference runs")
struct ConditionSyntaxTests {
    @Test("a condition's canonical spelling parses back to the same value, selectors and all")
    func roundTrip() throws {
        let texts = [
            "zero encoder.blocks.1.hook_attn_out heads=0,3",
            "skip decoder.blocks.2+3",
            "scale encoder.blocks.2.mlp.hook_post by 2.5 frames=0:150",
            "swap encoder.blocks.2.hook_resid_post from jfk",
            "mean decoder.blocks.0.hook_mlp_out positions=3,4",
            "zero decoder.blocks.*.hook_cross_attn_out together",
        ]
        for text in texts {
            let spec = try ConditionSpec(parsing: text)
            #expect(spec.description == text)
            #expect(try ConditionSpec(parsing: spec.description) == spec)
        }
        let spec = try ConditionSpec(parsing: "scale  encoder.blocks.2.mlp.hook_post   by 2 frames=10:20")
        #expect(spec.verb == .scale && spec.factor == 2 && spec.frames == 10..<20)
        #expect(try ConditionSpec(parsing: "skip decoder.blocks.2+3").blocks?.indices == [2, 3])
    }

    @Test("a bad condition is refused with its code and the words that are wrong")
    func refusals() throws {
        let cases: [(String, ConditionError.Code, String)] = [
            ("ablate encoder.blocks.1", .syntax, "VERB"),
            ("zero", .syntax, "VERB TARGET"),
            ("scale encoder.blocks.2.mlp.hook_post", .syntax, "by FACTOR"),
            ("scale encoder.blocks.2.mlp.hook_post by nan", .invalidSelector, "nan"),
            ("scale encoder.blocks.2.mlp.hook_post by two", .syntax, "'two'"),
            ("zero encoder.blocks.1.hook_attn_out by 2", .syntax, "only scale"),
            ("skip encoder.blocks.1.hook_attn_out", .unknownTarget, "blocks"),
            ("zero decoder.blocks.1.hook_mlp_out frames=0:10", .invalidSelector, "positions"),
            ("zero encoder.blocks.1.hook_mlp_out positions=3", .invalidSelector, "frames"),
            ("zero encoder.blocks.1.hook_attn_out frames=10:5", .invalidSelector, "10:5"),
            ("zero encoder.blocks.1.attn.hook_z heads=1,x", .syntax, "'1,x'"),
            ("zero encoder.blocks.1.attn.hook_z heads=-1", .invalidSelector, "-1"),
            ("zero encoder.blocks.1.attn.hook_z extra", .syntax, "'extra'"),
            ("skip decoder.blocks.2+3 together", .syntax, "together already"),
        ]
        for (text, code, words) in cases {
            #expect {
                _ = try ConditionSpec(parsing: text)
            } throws: {
                ($0 as? ConditionError)?.code == code && "\($0)".contains(words)
            }
        }
    }

    @Test("every condition of a sweep spells itself in the syntax, and the spelling gives the condition back")
    func sweepConditions() throws {
        let registry = HookRegistry(dims: try Fixtures.loaded("tiny.en").model.dims)
        var conditions = try Component.parse(["encoder", "decoder", "decoder.blocks.2+3"], registry: registry)
            .flatMap { c in AblationMode.allCases.filter { c.blocks.count == 1 || $0 == .zero }.map { Condition(c, $0) }
            }
        conditions += try Component.parse(["decoder.blocks.1.attn.hook_z"], registry: registry, heads: [0, 3])
            .map { Condition($0, .resample) }
        #expect(conditions.count == 4 * 3 + 4 * 3 + 1 + 1)
        for c in conditions {
            #expect(try Condition.from(ConditionSpec(parsing: c.description), registry: registry) == [c], "\(c)")
        }
        #expect(try Condition.from(ConditionSpec(parsing: "zero decoder"), registry: registry).count == 4)
        // A pattern is one condition per point, or one for all of them with 'together'.
        let each = try Condition.from(
            ConditionSpec(parsing: "zero decoder.blocks.*.hook_cross_attn_out"), registry: registry)
        let all = try Condition.from(
            ConditionSpec(parsing: "mean decoder.blocks.*.hook_cross_attn_out together"), registry: registry)
        #expect(each.count == 4 && all.count == 1 && all[0].component?.blocks == [0, 1, 2, 3])
        #expect(all[0].description == "mean decoder.blocks.*.hook_cross_attn_out together")
        #expect(try Condition.from(ConditionSpec(parsing: all[0].description), registry: registry) == all)
        #expect {
            _ = try Condition.from(ConditionSpec(parsing: "zero *.hook_mlp_out together"), registry: registry)
        } throws: {
            ($0 as? ConditionError)?.code == .unsupported && "\($0)".contains("both sides")
        }
        #expect {
            _ = try Condition.from(ConditionSpec(parsing: "swap encoder.blocks.2 from jfk"), registry: registry)
        } throws: {
            ($0 as? ConditionError)?.code == .unsupported
        }
    }
}
