import AuscultWhisper

let model = try LoadedModel("tiny.en")
let audio: AudioInput = "data/clips/jfk.wav"
// Cache every residual stream of the clip, and the logits.
let (clean, cache) = try model.runWithCache(audio, names: ["*resid*"], logits: true)
print(clean.text)
print("decoder residual streams:", try cache.accumulatedResid(.decoder).stack.shape)
// Zero head 3 of decoder block 1's self-attention, teacher-forced on the clean tokens.
let ablated = try model.run(
    audio, tokens: clean.inputTokens,
    interventions: [.zero(.decoder(1).attn.z, heads: [3])], logits: true)
let last = clean.inputTokens.count - 1, next = clean.logits!.argmax()[last]
print("logit of the last prediction:", clean.logits![last, next], "→", ablated.logits![last, next])
