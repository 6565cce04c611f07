"""The names MLflow runs and models are found by: tags, artifact paths, the registry alias. No MLflow import,
so that a command can name them before it spends seconds importing MLflow."""

# Tags of a run
ERROR = "error"  # why a run ended FAILED or KILLED
EVALUATED = "evaluated"  # "true" once evaluate has logged its metrics
TRAINED_BY_RUN = "trained_by_run"  # on a re-evaluation: the run whose model it evaluated
EXP_NAME = "dvc.exp_name"  # the DVC experiment that made the run
RAW_DATA, RAW_DATA_MD5 = "dvc.raw_data", "dvc.raw_data_md5"  # the raw CSV and DVC's md5 of it
CPU_KERNELS = "cpu_kernels"  # the level torch's kernels ran at: what a float's last bits depend on
GIT_COMMIT = "mlflow.source.git.commit"
SOURCE_NAME, SOURCE_TYPE = "mlflow.source.name", "mlflow.source.type"
NOTE = "mlflow.note.content"  # the run's description in the UI
PARENT_RUN = "mlflow.parentRunId"
STUDY, TRIAL = "tune.study", "tune.trial"  # a search's trial: its study and its number

# The experiment's kind: MLflow's UI opens such an experiment on its runs table ("Model training")
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}

# A run's dataset inputs, by context
TRAINING, VALIDATION = "training", "validation"

# Artifacts of a run
WEIGHTS = "weights"  # the folder of the safetensors file, the coefficients and their heat map
LOGGED_MODEL = "weights/model.safetensors"
EVALUATION = "evaluation"  # the evaluation's files
MODEL = "model"  # the MLflow model

ALIAS = "champion"  # the registered version `make promote` chooses and `make serve` serves
