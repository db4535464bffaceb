"""Evaluation script for measuring mean squared error.

Adapted from the AWS SageMaker "abalone" MLOps example
(aws/amazon-sagemaker-examples, sagemaker-pipelines/tabular/abalone_build_train_deploy,
and the template's pipelines/abalone/evaluate.py). Runs in the sagemaker-xgboost 1.7-1
container as a processing job.

One change from the example: the built-in XGBoost algorithm of version 1.3-1 and later
writes `xgboost-model` with Booster.save_model (XGBoost's own format), not with pickle,
so the model is loaded with Booster.load_model.
"""
import json
import logging
import pathlib
import tarfile

import numpy as np
import pandas as pd
import xgboost
from sklearn.metrics import mean_squared_error

logger = logging.getLogger()
logger.setLevel(logging.INFO)
logger.addHandler(logging.StreamHandler())

MODEL_PATH = "/opt/ml/processing/model/model.tar.gz"
TEST_PATH = "/opt/ml/processing/test/test.csv"
OUTPUT_DIR = "/opt/ml/processing/evaluation"
EXTRACT_DIR = "/tmp/model"


if __name__ == "__main__":
    logger.debug("Starting evaluation.")
    with tarfile.open(MODEL_PATH) as tar:
        tar.extractall(path=EXTRACT_DIR)

    logger.debug("Loading xgboost model.")
    model = xgboost.Booster()
    model.load_model(f"{EXTRACT_DIR}/xgboost-model")

    logger.debug("Reading test data.")
    df = pd.read_csv(TEST_PATH, header=None)
    y_test = df.iloc[:, 0].to_numpy()
    df.drop(df.columns[0], axis=1, inplace=True)
    X_test = xgboost.DMatrix(df.values)

    logger.info("Performing predictions against test data.")
    predictions = model.predict(X_test)

    logger.debug("Calculating mean squared error.")
    mse = float(mean_squared_error(y_test, predictions))
    std = float(np.std(y_test - predictions))
    report_dict = {
        "regression_metrics": {
            "mse": {"value": mse, "standard_deviation": std},
        },
    }

    pathlib.Path(OUTPUT_DIR).mkdir(parents=True, exist_ok=True)
    logger.info("Writing out evaluation report with mse: %f", mse)
    with open(f"{OUTPUT_DIR}/evaluation.json", "w") as f:
        f.write(json.dumps(report_dict))
