"""Fine-tune a STORM model with LoRA on a video instruction dataset, then merge the adapter into the model.

    python examples/finetune_lora.py --model path/to/storm --data data/train.jsonl --output-dir runs/lora

The data is a JSONL file of rows {"video": "videos/x.mp4", "messages": [...]} (docs/training.md); try it with the
synthetic set: `storm-hf make-data data --n 96`. For several GPUs: `accelerate launch examples/finetune_lora.py ...`.
The same run from the command line: `storm-hf train --lora --model ... --data ... --output-dir ...`.
"""

import argparse
from pathlib import Path

from storm_hf.training import StormTrainingArguments, merge_lora, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="STORM model folder or Hub id")
    parser.add_argument("--data", required=True, help="training JSONL (video paths relative to it)")
    parser.add_argument("--output-dir", required=True, help="checkpoints, the adapter and the merged model go here")
    parser.add_argument("--num-frames", type=int, default=32, help="frames per video (default 32)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1, help="stop early after this many steps")
    args = parser.parse_args()

    training_args = StormTrainingArguments(
        output_dir=args.output_dir,
        lora=True,  # rank 16, alpha 32 on the LLM attention/MLP and the Mamba projections
        num_frames=args.num_frames,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=8,
        save_steps=200,
        save_total_limit=2,
    )
    resume = any(Path(args.output_dir).glob("checkpoint-*"))  # an earlier run of this script left checkpoints
    adapter = train(args.model, args.data, training_args, resume_from_checkpoint=resume)
    if training_args.process_index == 0:
        merged = merge_lora(args.model, adapter, Path(args.output_dir) / "merged", overwrite=True)
        print(f"adapter: {adapter}\nmerged model: {merged}")


if __name__ == "__main__":
    main()
