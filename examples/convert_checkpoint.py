"""Convert a STORM research checkpoint (VILA layout) into a Hub folder, check parity, and answer with the result.

    python examples/convert_checkpoint.py research/ckpt converted/storm --license apache-2.0 --video clip.mp4

Every tensor is copied by name and shape (never unpickled), then each part is run against the research part it
came from (vision features, temporal encoder, text logits, a generation) before anything is written; a failed check
writes nothing. The license is the research weights' own: nothing is assumed. Same as `storm-hf convert`.
"""

import argparse

from transformers import AutoModelForImageTextToText, AutoProcessor

from storm_hf.conversion.convert import convert_research_checkpoint
from storm_hf.conversion.model_card import CardInfo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="research checkpoint (config.json, llm/, vision_tower/, mm_projector/)")
    parser.add_argument("out", help="Hub folder to write")
    parser.add_argument("--license", required=True, help="license of the research weights (a Hub license id)")
    parser.add_argument("--base-model", action="append", default=[], help="Hub id of a base model (repeatable)")
    parser.add_argument("--video", help="a video to ask the converted model about")
    args = parser.parse_args()

    card = CardInfo(license=args.license, base_models=args.base_model)
    report = convert_research_checkpoint(args.checkpoint, args.out, card=card, overwrite=True, progress=False)
    print(report.format())  # per part: tensors copied and the largest difference against the research part

    if args.video:  # the folder as users load it (trust_remote_code also works where storm-hf is not installed)
        model = AutoModelForImageTextToText.from_pretrained(args.out, trust_remote_code=True)
        processor = AutoProcessor.from_pretrained(args.out, trust_remote_code=True)
        chat = [{"role": "user", "content": [{"type": "video", "path": args.video},
                                             {"type": "text", "text": "What happens in this video?"}]}]
        inputs = processor.apply_chat_template(
            chat, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
            processor_kwargs={"num_frames": 8},
        )
        output = model.generate(**inputs, max_new_tokens=16, do_sample=False)
        print("answer:", processor.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))


if __name__ == "__main__":
    main()
