"""Create the SageMaker algorithm resource (CreateAlgorithm) for a pushed image.

The request comes from `lstm_ad_local.algorithm_spec`, i.e. from the code's hyperparameter
schema and metric list. SageMaker then validates it by running the profile's training
and batch transform jobs in your account; the algorithm can be listed on AWS Marketplace
only once that validation has completed.

    python -m lstm_ad_local.create_algorithm \\
        --image-uri 123456789012.dkr.ecr.us-east-1.amazonaws.com/lstm-ad:abc1234-gpu --gpu \\
        --image-digest sha256:... --role-arn arn:aws:iam::123456789012:role/SageMakerRole \\
        --training-data s3://bucket/lstm-ad/validation/training/ \\
        --transform-data s3://bucket/lstm-ad/validation/transform/ \\
        --output-path s3://bucket/lstm-ad/validation/output/ [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lstm_ad_local.algorithm_spec import DEFAULT_ALGORITHM_NAME, AlgorithmRequest, create_algorithm_request


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-uri", required=True, help="ECR URI of the pushed image (training and inference)")
    parser.add_argument("--image-digest", help="sha256:<64 hex> digest of that image (pins the exact build)")
    parser.add_argument("--role-arn", required=True, help="IAM role SageMaker assumes for the validation jobs")
    parser.add_argument("--training-data", required=True, help="S3 prefix of the validation training CSV files")
    parser.add_argument("--transform-data", required=True, help="S3 prefix of the CSV files to batch-transform")
    parser.add_argument("--output-path", required=True, help="S3 prefix for the validation jobs' output")
    parser.add_argument("--name", default=DEFAULT_ALGORITHM_NAME, help="algorithm name (letters, digits, hyphens)")
    parser.add_argument("--gpu", action="store_true", help="the image is the GPU build: offer GPU instance types")
    parser.add_argument("--certify-for-marketplace", action="store_true",
                        help="ask SageMaker to certify the algorithm for listing on AWS Marketplace")
    parser.add_argument("--region", help="AWS region (default: the boto3 session's)")
    parser.add_argument("--dry-run", action="store_true", help="print the request as JSON; call nothing")
    return parser.parse_args(argv)


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    return create_algorithm_request(AlgorithmRequest(
        image_uri=args.image_uri, image_digest=args.image_digest, validation_role=args.role_arn,
        training_data=args.training_data, transform_data=args.transform_data, output_path=args.output_path,
        name=args.name, gpu=args.gpu, certify_for_marketplace=args.certify_for_marketplace))


def main(argv: list[str] | None = None, client: Any = None) -> int:
    args = parse_args(argv)
    request = build_request(args)
    if args.dry_run:
        print(json.dumps(request, indent=2))
        return 0
    if client is None:
        import boto3  # only a real call needs AWS credentials

        client = boto3.client("sagemaker", region_name=args.region)
    response = client.create_algorithm(**request)
    print(f"Created {response['AlgorithmArn']}; validation runs now. Follow it with:\n"
          f"  aws sagemaker describe-algorithm --algorithm-name {args.name} "
          "--query '[AlgorithmStatus, AlgorithmStatusDetails]'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
