"""Builder and export metadata of FaceBehaviorNet from an experiment config."""

from fermtl_tf.errors import ConfigError
from fermtl_tf.knowledge.relatedness import FACEBEHAVIORNET_AUS, infer_conditional
from fermtl_tf.knowledge.vocabularies import BASIC7
from fermtl_tf.methods.facebehaviornet.model import FaceBehaviorNet


def attribute_relatedness_from_data(data, num_identities):
    """Case II's p(attr | id) (§3.2.1, Table 2) from the training sources' labels."""
    labels = data.training_labels(("identity", "attributes", "attributes_mask"))
    identity = labels["identity"]
    return infer_conditional(identity, labels["attributes"], mask_a=identity >= 0,
                             mask_b=labels["attributes_mask"], num_classes_a=num_identities)


def _num_identities(options, data):
    if options.num_classes:
        return options.num_classes
    if data.num_identities:
        return data.num_identities
    return int(data.training_labels(("identity",))["identity"].max()) + 1


def _head_sizes(config, data):
    sizes = {}
    for task, options in config.tasks.items():
        if task == "expression":
            sizes[task] = options.num_classes
        elif task == "au":
            sizes[task] = len(options.au_names or FACEBEHAVIORNET_AUS)
        elif task == "va":
            sizes[task] = 2
        elif task == "identity":
            sizes[task] = _num_identities(options, data)
        else:
            sizes[task] = options.num_attributes or data.num_attributes
    return sizes


def build_model(config, data):
    """``FaceBehaviorNet`` for ``config`` (rules checked by ``config.check``)."""
    sizes = _head_sizes(config, data)
    coupling = None
    if config.coupling.name != "none":
        coupling = dict(vars(config.coupling))
    relatedness = None
    if coupling and {"identity", "attributes"} <= set(sizes):
        relatedness = attribute_relatedness_from_data(data, sizes["identity"])
    au = config.tasks.get("au")
    try:
        return FaceBehaviorNet(
            sizes, emotions=data.expression_vocabulary or list(BASIC7),
            au_names=tuple((au.au_names if au else None) or FACEBEHAVIORNET_AUS),
            label_au_names=data.source_au_names(), backbone=config.backbone.name,
            width=config.backbone.width, backbone_weights=config.backbone.weights,
            input_size=config.data.image_size[0], coupling=coupling,
            attribute_relatedness=relatedness,
            task_weights={task: config.task_weight(task) for task in sizes},
            name="facebehaviornet")
    except (ValueError, KeyError) as error:
        raise ConfigError(f"coupling/tasks: {error}") from None


def export_metadata(model, data):
    """The AU head has its own vocabulary: name its columns for the export."""
    return {"au_names": model.output_au_names}
