"""Feature engineers the abalone dataset.

Adapted from the AWS SageMaker "abalone" MLOps example
(aws/amazon-sagemaker-examples, sagemaker-pipelines/tabular/abalone_build_train_deploy,
and aws-samples/sagemaker-custom-project-templates, .../pipelines/abalone/preprocess.py).
Runs in the sagemaker-scikit-learn 1.2-1 container. Unlike the template, the raw data
is not downloaded with boto3: it is mounted by a ProcessingInput at
/opt/ml/processing/input, so the job needs no network access.
"""
import glob
import logging
import os
import pathlib

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

logger = logging.getLogger()
logger.setLevel(logging.INFO)
logger.addHandler(logging.StreamHandler())

BASE_DIR = "/opt/ml/processing"

# Since we get a headerless CSV file we specify the column names here.
feature_columns_names = [
    "sex",
    "length",
    "diameter",
    "height",
    "whole_weight",
    "shucked_weight",
    "viscera_weight",
    "shell_weight",
]
label_column = "rings"

feature_columns_dtype = {
    "sex": str,
    "length": np.float64,
    "diameter": np.float64,
    "height": np.float64,
    "whole_weight": np.float64,
    "shucked_weight": np.float64,
    "viscera_weight": np.float64,
    "shell_weight": np.float64,
}
label_column_dtype = {"rings": np.float64}


def read_input(input_dir):
    """Reads every headerless CSV file in the processing input directory."""
    files = sorted(glob.glob(os.path.join(input_dir, "**", "*.csv"), recursive=True))
    if not files:
        raise FileNotFoundError(f"no .csv file found under {input_dir}")
    logger.info("Reading %s", files)
    return pd.concat(
        (
            pd.read_csv(
                f,
                header=None,
                names=feature_columns_names + [label_column],
                dtype={**feature_columns_dtype, **label_column_dtype},
            )
            for f in files
        ),
        ignore_index=True,
    )


if __name__ == "__main__":
    df = read_input(f"{BASE_DIR}/input")

    logger.debug("Defining transformers.")
    numeric_features = list(feature_columns_names)
    numeric_features.remove("sex")
    numeric_transformer = Pipeline(
        steps=[("imputer", SimpleImputer(strategy="median")), ("scaler", StandardScaler())]
    )

    categorical_features = ["sex"]
    categorical_transformer = Pipeline(
        steps=[
            ("imputer", SimpleImputer(strategy="constant", fill_value="missing")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )

    preprocess = ColumnTransformer(
        transformers=[
            ("num", numeric_transformer, numeric_features),
            ("cat", categorical_transformer, categorical_features),
        ]
    )

    logger.info("Applying transforms.")
    y = df.pop(label_column)
    X_pre = preprocess.fit_transform(df)
    y_pre = y.to_numpy().reshape(len(y), 1)

    # The target (rings) goes first, as the built-in XGBoost algorithm expects for CSV.
    X = np.concatenate((y_pre, X_pre), axis=1)

    logger.info("Splitting %d rows of data into train, validation, test datasets.", len(X))
    np.random.shuffle(X)
    train, validation, test = np.split(X, [int(0.7 * len(X)), int(0.85 * len(X))])

    logger.info("Writing out datasets to %s.", BASE_DIR)
    for name, data in (("train", train), ("validation", validation), ("test", test)):
        pathlib.Path(f"{BASE_DIR}/{name}").mkdir(parents=True, exist_ok=True)
        pd.DataFrame(data).to_csv(f"{BASE_DIR}/{name}/{name}.csv", header=False, index=False)
